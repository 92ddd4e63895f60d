//! Reading and validating the config tables into a [`Snapshot`].
//!
//! Owns: the SQL queries, per-column conversion (with errors naming table,
//! row id and column), server selection, handler deduplication, the rules
//! across rows ([`validate`]) and the warnings. Called by
//! [`super::load_from`] and [`super::list_servers`].
//!
//! Every rule a server needs to start is checked here, so `kennel check`
//! and starting a server (both through [`super::load()`]) accept and refuse
//! the same configs with the same message.
//!
//! Older Mongrel2 schemas lack some of what Kennel reads (the `config.sql`
//! of Mongrel2's Python library has no `server.control_port` and no
//! `filter` or `xrequest` table; an m2sh database has no `kennel_*`
//! tables). Each load first reads which tables and columns the database
//! has ([`Schema`]); a missing optional column reads as NULL, which every
//! reader takes as the column's default, and a missing optional table
//! reads as empty. A missing column without a default is an error naming
//! the table and the column.

use std::collections::{HashMap, HashSet};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Params, Row};

use super::schema::REQUIRED_TABLES;
use super::settings::{Applied, Settings, YEAR_MS};
use super::{
    ConfigError, Dir, Handler, Host, MimeTypes, Plugin, Protocol, Proxy, Server, ServerSelector,
    Snapshot, Target,
};
use crate::routing::{HostTable, RouteTable};

/// One row being read: knows its table and id so every error names them.
struct Cells<'a, 'r> {
    row: &'a Row<'r>,
    table: &'static str,
    id: i64,
}

impl Cells<'_, '_> {
    fn invalid(&self, column: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            table: self.table,
            id: self.id,
            column,
            problem: problem.into(),
        }
    }

    fn value(&self, idx: usize) -> Result<ValueRef<'_>, ConfigError> {
        self.row.get_ref(idx).map_err(|source| ConfigError::Query {
            table: self.table,
            source,
        })
    }

    /// A text column; numbers read as their text. NULL is `None`.
    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<String>, ConfigError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| self.invalid(column, "is not valid UTF-8")),
            ValueRef::Integer(n) => Ok(Some(n.to_string())),
            ValueRef::Real(f) => Ok(Some(f.to_string())),
            ValueRef::Blob(_) => Err(self.invalid(column, "is a blob, expected text")),
        }
    }

    /// A text column that must not be NULL.
    fn text(&self, idx: usize, column: &'static str) -> Result<String, ConfigError> {
        self.opt_text(idx, column)?
            .ok_or_else(|| self.invalid(column, "is NULL"))
    }

    /// A text column that must not be NULL or empty.
    fn non_empty_text(&self, idx: usize, column: &'static str) -> Result<String, ConfigError> {
        let text = self.text(idx, column)?;
        if text.is_empty() {
            return Err(self.invalid(column, "is empty"));
        }
        Ok(text)
    }

    /// An integer column. NULL is `None`; text must be a whole decimal.
    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, ConfigError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            ValueRef::Real(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
            ValueRef::Real(f) => Err(self.invalid(column, format!("{f} is not an integer"))),
            ValueRef::Text(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                text.parse()
                    .map(Some)
                    .map_err(|_| self.invalid(column, format!("{text:?} is not an integer")))
            }
            ValueRef::Blob(_) => Err(self.invalid(column, "is a blob, expected an integer")),
        }
    }

    /// An integer column in `min..=max`; NULL reads as `default`, or is an
    /// error when there is none.
    fn ranged(
        &self,
        idx: usize,
        column: &'static str,
        min: i64,
        max: i64,
        default: Option<i64>,
    ) -> Result<i64, ConfigError> {
        let n = match (self.opt_int(idx, column)?, default) {
            (Some(n), _) => n,
            (None, Some(d)) => d,
            (None, None) => return Err(self.invalid(column, "is NULL")),
        };
        if n < min || n > max {
            let expected = if max == i64::MAX {
                format!("{min} or more")
            } else {
                format!("{min} to {max}")
            };
            return Err(self.invalid(column, format!("{n} is out of range (expected {expected})")));
        }
        Ok(n)
    }
}

fn query_error(table: &'static str) -> impl Fn(rusqlite::Error) -> ConfigError {
    move |source| ConfigError::Query { table, source }
}

/// Runs `sql` (whose first column is the row id) and calls `f` per row.
fn each_row<P: Params>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    params: P,
    mut f: impl FnMut(&Cells<'_, '_>) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let q = query_error(table);
    let mut stmt = conn.prepare_cached(sql).map_err(&q)?;
    let mut rows = stmt.query(params).map_err(&q)?;
    while let Some(row) = rows.next().map_err(&q)? {
        let id = row.get::<_, i64>(0).map_err(&q)?;
        f(&Cells { row, table, id })?;
    }
    Ok(())
}

/// Runs `sql` for the row with `id` and converts it with `f`.
fn one_row<T>(
    conn: &Connection,
    table: &'static str,
    sql: &str,
    id: i64,
    f: impl FnOnce(&Cells<'_, '_>) -> Result<T, ConfigError>,
) -> Result<Option<T>, ConfigError> {
    let q = query_error(table);
    let mut stmt = conn.prepare_cached(sql).map_err(&q)?;
    let mut rows = stmt.query([id]).map_err(&q)?;
    match rows.next().map_err(&q)? {
        Some(row) => f(&Cells { row, table, id }).map(Some),
        None => Ok(None),
    }
}

/// The tables of the database and their columns (names lower-cased, as
/// SQLite compares them case-insensitively), read once per load.
struct Schema {
    tables: HashMap<String, HashSet<String>>,
}

impl Schema {
    fn read(conn: &Connection) -> Result<Schema, ConfigError> {
        let q = query_error("sqlite_master");
        let mut stmt = conn
            .prepare(
                "SELECT lower(m.name), lower(c.name) \
                 FROM sqlite_master AS m, pragma_table_info(m.name) AS c \
                 WHERE m.type = 'table'",
            )
            .map_err(&q)?;
        let mut rows = stmt.query([]).map_err(&q)?;
        let mut tables: HashMap<String, HashSet<String>> = HashMap::new();
        while let Some(row) = rows.next().map_err(&q)? {
            let table: String = row.get(0).map_err(&q)?;
            let column: String = row.get(1).map_err(&q)?;
            tables.entry(table).or_default().insert(column);
        }
        Ok(Schema { tables })
    }

    fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    fn has_column(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|c| c.contains(column))
    }

    fn require_tables(&self, tables: &[&'static str]) -> Result<(), ConfigError> {
        match tables.iter().find(|t| !self.has_table(t)) {
            Some(&table) => Err(ConfigError::MissingTable { table }),
            None => Ok(()),
        }
    }

    /// `SELECT <columns> FROM <table> <rest>`, the columns in the order
    /// given. A name ending in `?` is a column an older Mongrel2 schema may
    /// lack: selected as `NULL` (its default, to every reader) when the
    /// table has none. Any other column, and every column in `rest_uses`
    /// (those the rest of the statement names), must exist.
    fn select(
        &self,
        table: &'static str,
        columns: &[&'static str],
        rest: &str,
        rest_uses: &[&'static str],
    ) -> Result<String, ConfigError> {
        let mut list = Vec::with_capacity(columns.len());
        for &column in columns {
            match column.strip_suffix('?') {
                Some(optional) if self.has_column(table, optional) => {
                    list.push(optional.to_owned())
                }
                Some(optional) => list.push(format!("NULL AS {optional}")),
                None => {
                    self.require_column(table, column)?;
                    list.push(column.to_owned());
                }
            }
        }
        for &column in rest_uses {
            self.require_column(table, column)?;
        }
        Ok(format!("SELECT {} FROM {table} {rest}", list.join(", ")))
    }

    fn require_column(&self, table: &'static str, column: &'static str) -> Result<(), ConfigError> {
        if self.has_column(table, column) {
            Ok(())
        } else {
            Err(ConfigError::MissingColumn { table, column })
        }
    }
}

/// What the loader reads of a `server` row ([`read_server`]'s indices).
const SERVER_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "access_log",
    "error_log",
    "chroot?",
    "pid_file",
    "control_port?",
    "default_host",
    "name?",
    "bind_addr?",
    "port",
    "use_ssl?",
];

fn read_server(c: &Cells<'_, '_>) -> Result<Server, ConfigError> {
    Ok(Server {
        id: c.id,
        uuid: c.text(1, "uuid")?,
        access_log: c.text(2, "access_log")?,
        error_log: c.text(3, "error_log")?,
        chroot: c
            .opt_text(4, "chroot")?
            .unwrap_or_else(|| "/var/www".into()),
        pid_file: c.text(5, "pid_file")?,
        control_port: c.opt_text(6, "control_port")?.unwrap_or_default(),
        default_host: c.text(7, "default_host")?,
        name: c.opt_text(8, "name")?.unwrap_or_default(),
        bind_addr: c
            .opt_text(9, "bind_addr")?
            .unwrap_or_else(|| "0.0.0.0".into()),
        port: c.ranged(10, "port", 0, 65535, None)? as u16,
        use_ssl: c.opt_int(11, "use_ssl")?.unwrap_or(0) != 0,
    })
}

pub(super) fn list_servers(conn: &Connection) -> Result<Vec<Server>, ConfigError> {
    let schema = Schema::read(conn)?;
    schema.require_tables(&["server"])?;
    let mut servers = Vec::new();
    each_row(
        conn,
        "server",
        &schema.select("server", SERVER_COLUMNS, "ORDER BY id", &[])?,
        [],
        |c| {
            servers.push(read_server(c)?);
            Ok(())
        },
    )?;
    Ok(servers)
}

/// What selection needs of a server row.
#[derive(Debug)]
struct ServerKey {
    id: i64,
    uuid: Option<String>,
    name: Option<String>,
}

fn select(keys: &[ServerKey], selector: &ServerSelector) -> Result<i64, ConfigError> {
    fn only(
        keys: &[ServerKey],
        what: &'static str,
        value: &str,
        hit: impl Fn(&ServerKey) -> bool,
    ) -> Result<i64, ConfigError> {
        let ids: Vec<i64> = keys.iter().filter(|k| hit(k)).map(|k| k.id).collect();
        match ids.as_slice() {
            [] => Err(ConfigError::NoSuchServer {
                what,
                value: value.to_owned(),
            }),
            [id] => Ok(*id),
            _ => Err(ConfigError::AmbiguousServer {
                what,
                value: value.to_owned(),
                ids,
            }),
        }
    }
    fn has_uuid(v: &str) -> impl Fn(&ServerKey) -> bool + '_ {
        move |k| k.uuid.as_deref() == Some(v)
    }
    fn has_name(v: &str) -> impl Fn(&ServerKey) -> bool + '_ {
        move |k| k.name.as_deref() == Some(v)
    }
    match selector {
        ServerSelector::Uuid(v) => only(keys, "uuid", v, has_uuid(v)),
        ServerSelector::Name(v) => only(keys, "name", v, has_name(v)),
        ServerSelector::UuidOrName(v) => {
            if keys.iter().any(has_uuid(v)) {
                only(keys, "uuid", v, has_uuid(v))
            } else if keys.iter().any(has_name(v)) {
                only(keys, "name", v, has_name(v))
            } else {
                Err(ConfigError::NoSuchServer {
                    what: "uuid or name",
                    value: v.clone(),
                })
            }
        }
        ServerSelector::Any => match keys {
            [one] => Ok(one.id),
            _ => Err(ConfigError::ServerNotChosen { count: keys.len() }),
        },
    }
}

pub(super) fn load(conn: &Connection, selector: &ServerSelector) -> Result<Snapshot, ConfigError> {
    // One read transaction, so a concurrent writer cannot hand us half a
    // config; dropping it ends it without writing anything.
    let _read = if conn.is_autocommit() {
        Some(
            conn.unchecked_transaction()
                .map_err(query_error("sqlite_master"))?,
        )
    } else {
        None
    };
    let schema = Schema::read(conn)?;
    schema.require_tables(REQUIRED_TABLES)?;

    let mut keys = Vec::new();
    each_row(
        conn,
        "server",
        &schema.select("server", &["id", "uuid", "name?"], "ORDER BY id", &[])?,
        [],
        |c| {
            keys.push(ServerKey {
                id: c.id,
                uuid: c.opt_text(1, "uuid")?,
                name: c.opt_text(2, "name")?,
            });
            Ok(())
        },
    )?;
    let server_id = select(&keys, selector)?;
    let server = one_row(
        conn,
        "server",
        &schema.select("server", SERVER_COLUMNS, "WHERE id = ?1", &[])?,
        server_id,
        read_server,
    )?
    .expect("the selected server row exists inside this transaction");

    let mut loader = Loader {
        conn,
        schema,
        warnings: Vec::new(),
        settings: Settings::default(),
        connect_waits: HashMap::new(),
        handlers: Vec::new(),
        handler_by_row: HashMap::new(),
        handler_by_specs: HashMap::new(),
        dirs: Vec::new(),
        dir_by_row: HashMap::new(),
        proxies: Vec::new(),
        proxy_by_row: HashMap::new(),
    };
    loader.read_settings()?;
    let mimetypes = loader.read_mimetypes()?;
    loader.read_kennel_handlers()?;
    let (hosts, host_table) = loader.read_hosts(&server)?;
    let default_host = hosts
        .iter()
        .rposition(|h| h.name == server.default_host)
        .ok_or_else(|| ConfigError::Invalid {
            table: "server",
            id: server.id,
            column: "default_host",
            problem: format!("no host named {:?} for this server", server.default_host),
        })?;
    let filters = loader.read_plugins("filter", server.id)?;
    let xrequests = loader.read_plugins("xrequest", server.id)?;
    // Kennel does the `sendfile` xrequest itself; every other plugin is a
    // Mongrel2 `.so` it cannot run.
    let ignored = xrequests.iter().filter(|x| !x.is_sendfile()).count();
    if !filters.is_empty() || ignored > 0 {
        loader.warnings.push(format!(
            "server {}: {} filter row(s) and {} xrequest row(s) configured; \
             Kennel does not run Mongrel2 .so plugins and ignores them \
             (it does the sendfile xrequest itself)",
            server.id,
            filters.len(),
            ignored
        ));
    }

    let snapshot = Snapshot {
        server,
        hosts,
        host_table,
        default_host,
        handlers: loader.handlers,
        dirs: loader.dirs,
        proxies: loader.proxies,
        settings: loader.settings,
        mimetypes,
        filters,
        xrequests,
        warnings: loader.warnings,
    };
    validate(&snapshot)?;
    for warning in &snapshot.warnings {
        tracing::warn!(target: "kennel::config", "{warning}");
    }
    Ok(snapshot)
}

/// The rules across rows that a snapshot must pass before anything is
/// served: what the row-by-row reading cannot see, and what would
/// otherwise only fail once the server starts binding sockets.
///
/// - No ZeroMQ endpoint may be bound twice: two handlers (not merged, as
///   rows with the same `send_spec` and `recv_spec` are) sharing a
///   `send_spec` or a `recv_spec`, or one handler's `send_spec` being
///   another's (or its own) `recv_spec`, could never both bind.
pub(super) fn validate(snapshot: &Snapshot) -> Result<(), ConfigError> {
    let mut bound: HashMap<&str, (&Handler, &'static str)> = HashMap::new();
    for handler in &snapshot.handlers {
        for (column, spec) in [
            ("send_spec", &handler.send_spec),
            ("recv_spec", &handler.recv_spec),
        ] {
            if let Some((other, other_column)) = bound.insert(spec, (handler, column)) {
                let owner = if other.id == handler.id {
                    "this handler".to_owned()
                } else {
                    format!("handler {}", other.id)
                };
                return Err(ConfigError::Invalid {
                    table: "handler",
                    id: handler.id,
                    column,
                    problem: format!(
                        "{spec:?} is also the {other_column} of {owner}; each endpoint can be \
                         bound only once, so the server could not start (handler rows share \
                         one socket pair only when both their send_spec and recv_spec are \
                         the same)"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The state of one load.
struct Loader<'c> {
    conn: &'c Connection,
    schema: Schema,
    warnings: Vec<String>,
    settings: Settings,
    /// `kennel_handler.connect_wait_ms` by handler id (`None` = the setting).
    connect_waits: HashMap<i64, Option<u64>>,
    handlers: Vec<Handler>,
    handler_by_row: HashMap<i64, usize>,
    handler_by_specs: HashMap<(String, String), usize>,
    dirs: Vec<Dir>,
    dir_by_row: HashMap<i64, usize>,
    proxies: Vec<Proxy>,
    proxy_by_row: HashMap<i64, usize>,
}

impl Loader<'_> {
    fn read_settings(&mut self) -> Result<(), ConfigError> {
        let mut first_row: HashMap<String, i64> = HashMap::new();
        let (settings, warnings) = (&mut self.settings, &mut self.warnings);
        each_row(
            self.conn,
            "setting",
            &self
                .schema
                .select("setting", &["id", "key", "value"], "ORDER BY id", &[])?,
            [],
            |c| {
                let key = c.text(1, "key")?;
                if let Some(first) = first_row.get(&key) {
                    return Err(c.invalid(
                        "key",
                        format!("duplicate key {key:?} (also in setting {first})"),
                    ));
                }
                first_row.insert(key.clone(), c.id);
                let value = c.text(2, "value")?;
                match settings.apply(&key, &value) {
                    Ok(Applied::Set)
                        if key == "upload.temp_store" && !value.ends_with("XXXXXX") =>
                    {
                        Err(c.invalid(
                            "value",
                            format!(
                                "{value:?} is not an mkstemp template for upload.temp_store \
                                 (it must end in XXXXXX)"
                            ),
                        ))
                    }
                    Ok(Applied::Set) => {
                        if let Some((_, _, why)) = super::settings::IGNORED
                            .iter()
                            .find(|(k, default, _)| *k == key && value.trim() != *default)
                        {
                            warnings.push(format!(
                                "setting {}: {key} is accepted but ignored by Kennel ({why})",
                                c.id
                            ));
                        }
                        Ok(())
                    }
                    Ok(Applied::Unknown) => {
                        warnings.push(format!("setting {}: unknown key {key:?} (ignored)", c.id));
                        Ok(())
                    }
                    Err(problem) => Err(c.invalid("value", problem)),
                }
            },
        )
    }

    fn read_mimetypes(&mut self) -> Result<MimeTypes, ConfigError> {
        let mut map = MimeTypes::new();
        let mut first_row: HashMap<String, i64> = HashMap::new();
        let limit = self.settings.limits_mime_ext_len;
        let warnings = &mut self.warnings;
        each_row(
            self.conn,
            "mimetype",
            &self.schema.select(
                "mimetype",
                &["id", "extension", "mimetype"],
                "ORDER BY id",
                &[],
            )?,
            [],
            |c| {
                let ext = c.text(1, "extension")?;
                if !ext.starts_with('.') {
                    return Err(c.invalid("extension", format!("{ext:?} must start with \".\"")));
                }
                if ext.len() >= limit {
                    return Err(c.invalid(
                        "extension",
                        format!(
                            "{ext:?} is {} bytes; limits.mime_ext_len ({limit}) allows at most {}",
                            ext.len(),
                            limit.saturating_sub(1)
                        ),
                    ));
                }
                let mimetype = c.non_empty_text(2, "mimetype")?;
                if let Some(first) = first_row.get(&ext) {
                    return Err(c.invalid(
                        "extension",
                        format!("duplicate extension {ext:?} (also in mimetype {first})"),
                    ));
                }
                first_row.insert(ext.clone(), c.id);
                if !map.insert(&ext, &mimetype) {
                    warnings.push(format!(
                        "mimetype {}: extension {ext:?} differs only in case from an earlier row, \
                         which wins",
                        c.id
                    ));
                }
                Ok(())
            },
        )?;
        Ok(map)
    }

    fn read_kennel_handlers(&mut self) -> Result<(), ConfigError> {
        if !self.schema.has_table("kennel_handler") {
            return Ok(());
        }
        let mut rows = Vec::new();
        each_row(
            self.conn,
            "kennel_handler",
            &self.schema.select(
                "kennel_handler",
                &["handler_id", "connect_wait_ms?"],
                "ORDER BY handler_id",
                &[],
            )?,
            [],
            |c| {
                let wait = match c.opt_int(1, "connect_wait_ms")? {
                    None => None,
                    Some(_) => {
                        Some(c.ranged(1, "connect_wait_ms", 0, YEAR_MS as i64, None)? as u64)
                    }
                };
                rows.push((c.id, wait));
                Ok(())
            },
        )?;
        for (id, wait) in rows {
            let exists = one_row(
                self.conn,
                "handler",
                &self
                    .schema
                    .select("handler", &["id"], "WHERE id = ?1", &[])?,
                id,
                |_| Ok(()),
            )?;
            if exists.is_none() {
                self.warnings.push(format!(
                    "kennel_handler {id}: no handler with id {id} (row ignored)"
                ));
            }
            self.connect_waits.insert(id, wait);
        }
        Ok(())
    }

    fn read_hosts(
        &mut self,
        server: &Server,
    ) -> Result<(Vec<Host>, HostTable<usize>), ConfigError> {
        let limit = self.settings.limits_host_name;
        let mut rows = Vec::new();
        each_row(
            self.conn,
            "host",
            &self.schema.select(
                "host",
                &["id", "name", "matching?"],
                "WHERE server_id = ?1 ORDER BY id",
                &["server_id"],
            )?,
            [server.id],
            |c| {
                let name = c.text(1, "name")?;
                let matching = c.opt_text(2, "matching")?.unwrap_or_else(|| name.clone());
                for (column, value) in [("name", &name), ("matching", &matching)] {
                    if value.len() > limit {
                        return Err(c.invalid(
                            column,
                            format!(
                                "is {} bytes, longer than limits.host_name ({limit})",
                                value.len()
                            ),
                        ));
                    }
                }
                rows.push((c.id, name, matching));
                Ok(())
            },
        )?;

        let mut hosts = Vec::with_capacity(rows.len());
        let mut table = HostTable::new();
        for (id, name, matching) in rows {
            let routes = self.read_routes(id)?;
            if routes.is_empty() {
                self.warnings.push(format!("host {id}: no routes"));
            }
            table
                .insert(&matching, hosts.len())
                .map_err(|e| ConfigError::Invalid {
                    table: "host",
                    id,
                    column: "matching",
                    problem: e.to_string(),
                })?;
            hosts.push(Host {
                id,
                name,
                matching,
                routes,
            });
        }
        Ok((hosts, table))
    }

    fn read_routes(&mut self, host_id: i64) -> Result<RouteTable<Target>, ConfigError> {
        struct RouteRow {
            id: i64,
            path: String,
            target_id: i64,
            target_type: String,
        }
        let mut rows = Vec::new();
        each_row(
            self.conn,
            "route",
            &self.schema.select(
                "route",
                &["id", "path", "target_id", "target_type"],
                "WHERE host_id = ?1 ORDER BY id",
                &["host_id"],
            )?,
            [host_id],
            |c| {
                rows.push(RouteRow {
                    id: c.id,
                    path: c.text(1, "path")?,
                    target_id: c
                        .opt_int(2, "target_id")?
                        .ok_or_else(|| c.invalid("target_id", "is NULL"))?,
                    target_type: c.text(3, "target_type")?,
                });
                Ok(())
            },
        )?;

        let mut routes = RouteTable::new();
        for row in rows {
            let invalid = |column, problem: String| ConfigError::Invalid {
                table: "route",
                id: row.id,
                column,
                problem,
            };
            let target = match row.target_type.as_str() {
                "handler" => self.handler(row.target_id)?.map(Target::Handler),
                "dir" => self.dir(row.target_id)?.map(Target::Dir),
                "proxy" => self.proxy(row.target_id)?.map(Target::Proxy),
                other => {
                    return Err(invalid(
                        "target_type",
                        format!("unknown target type {other:?} (expected handler, dir or proxy)"),
                    ))
                }
            }
            .ok_or_else(|| {
                invalid(
                    "target_id",
                    format!("no {} with id {}", row.target_type, row.target_id),
                )
            })?;
            routes
                .insert(&row.path, target)
                .map_err(|e| invalid("path", e.to_string()))?;
        }
        Ok(routes)
    }

    /// The handler for `handler.id = id`, deduplicated by send and recv spec.
    fn handler(&mut self, id: i64) -> Result<Option<usize>, ConfigError> {
        if let Some(&index) = self.handler_by_row.get(&id) {
            return Ok(Some(index));
        }
        let mut warnings = Vec::new();
        let default_wait = self.settings.kennel_handler_connect_wait_ms;
        let wait = self.connect_waits.get(&id).copied().flatten();
        let handler = one_row(
            self.conn,
            "handler",
            &self.schema.select(
                "handler",
                &[
                    "id",
                    "send_spec",
                    "send_ident",
                    "recv_spec",
                    "recv_ident",
                    "raw_payload?",
                    "protocol?",
                ],
                "WHERE id = ?1",
                &[],
            )?,
            id,
            |c| {
                let raw_payload = match c.opt_int(5, "raw_payload")?.unwrap_or(0) {
                    0 => false,
                    1 => true,
                    other => {
                        warnings.push(format!(
                            "handler {id}: column raw_payload: {other} is neither 0 nor 1; \
                             read as 0, as Mongrel2 does"
                        ));
                        false
                    }
                };
                let protocol = match c.opt_text(6, "protocol")?.as_deref() {
                    None | Some("json") => Protocol::Json,
                    Some("tnetstring") => Protocol::Tnetstring,
                    Some(other) => {
                        warnings.push(format!(
                            "handler {id}: column protocol: unknown protocol {other:?}; \
                             using json, as Mongrel2 does"
                        ));
                        Protocol::Json
                    }
                };
                Ok(Handler {
                    id,
                    row_ids: vec![id],
                    send_spec: c.non_empty_text(1, "send_spec")?,
                    send_ident: c.text(2, "send_ident")?,
                    recv_spec: c.non_empty_text(3, "recv_spec")?,
                    recv_ident: c.text(4, "recv_ident")?,
                    raw_payload,
                    protocol,
                    connect_wait_ms: wait.unwrap_or(default_wait),
                })
            },
        )?;
        self.warnings.append(&mut warnings);
        let Some(handler) = handler else {
            return Ok(None);
        };

        let specs = (handler.send_spec.clone(), handler.recv_spec.clone());
        let index = if let Some(&index) = self.handler_by_specs.get(&specs) {
            let first = &mut self.handlers[index];
            first.row_ids.push(id);
            let same = first.send_ident == handler.send_ident
                && first.recv_ident == handler.recv_ident
                && first.raw_payload == handler.raw_payload
                && first.protocol == handler.protocol
                && first.connect_wait_ms == handler.connect_wait_ms;
            if !same {
                self.warnings.push(format!(
                    "handler {id}: same send_spec and recv_spec as handler {}, whose other \
                     columns are used, as Mongrel2 does",
                    first.id
                ));
            }
            index
        } else {
            self.handlers.push(handler);
            self.handler_by_specs.insert(specs, self.handlers.len() - 1);
            self.handlers.len() - 1
        };
        self.handler_by_row.insert(id, index);
        Ok(Some(index))
    }

    fn dir(&mut self, id: i64) -> Result<Option<usize>, ConfigError> {
        if let Some(&index) = self.dir_by_row.get(&id) {
            return Ok(Some(index));
        }
        let max_path = self.settings.limits_dir_max_path;
        let dir = one_row(
            self.conn,
            "directory",
            &self.schema.select(
                "directory",
                &["id", "base", "index_file", "default_ctype", "cache_ttl?"],
                "WHERE id = ?1",
                &[],
            )?,
            id,
            |c| {
                let base = c.non_empty_text(1, "base")?;
                if !base.ends_with('/') {
                    return Err(c.invalid("base", "must end with \"/\""));
                }
                if base.len() > max_path {
                    return Err(c.invalid(
                        "base",
                        format!(
                            "is {} bytes, longer than limits.dir_max_path ({max_path})",
                            base.len()
                        ),
                    ));
                }
                Ok(Dir {
                    id,
                    base,
                    index_file: c.text(2, "index_file")?,
                    default_ctype: c.text(3, "default_ctype")?,
                    cache_ttl: c.ranged(4, "cache_ttl", 0, i64::MAX, Some(0))? as u64,
                })
            },
        )?;
        Ok(dir.map(|dir| {
            self.dirs.push(dir);
            self.dir_by_row.insert(id, self.dirs.len() - 1);
            self.dirs.len() - 1
        }))
    }

    fn proxy(&mut self, id: i64) -> Result<Option<usize>, ConfigError> {
        if let Some(&index) = self.proxy_by_row.get(&id) {
            return Ok(Some(index));
        }
        let proxy = one_row(
            self.conn,
            "proxy",
            &self
                .schema
                .select("proxy", &["id", "addr", "port"], "WHERE id = ?1", &[])?,
            id,
            |c| {
                Ok(Proxy {
                    id,
                    addr: c.non_empty_text(1, "addr")?,
                    port: c.ranged(2, "port", 1, 65535, None)? as u16,
                })
            },
        )?;
        Ok(proxy.map(|proxy| {
            self.proxies.push(proxy);
            self.proxy_by_row.insert(id, self.proxies.len() - 1);
            self.proxies.len() - 1
        }))
    }

    /// The `filter` or `xrequest` rows of a server; a missing table (older
    /// Mongrel2 schemas lack one or the other) reads as empty.
    fn read_plugins(
        &mut self,
        table: &'static str,
        server_id: i64,
    ) -> Result<Vec<Plugin>, ConfigError> {
        if !self.schema.has_table(table) {
            return Ok(Vec::new());
        }
        let mut plugins = Vec::new();
        each_row(
            self.conn,
            table,
            &self.schema.select(
                table,
                &["id", "name", "settings"],
                "WHERE server_id = ?1 ORDER BY id",
                &["server_id"],
            )?,
            [server_id],
            |c| {
                plugins.push(Plugin {
                    id: c.id,
                    name: c.opt_text(1, "name")?.unwrap_or_default(),
                    settings: c.opt_text(2, "settings")?.unwrap_or_default(),
                });
                Ok(())
            },
        )?;
        Ok(plugins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<ServerKey> {
        let key = |id, uuid: &str, name: &str| ServerKey {
            id,
            uuid: Some(uuid.into()),
            name: Some(name.into()),
        };
        vec![
            key(1, "aaaa", "main"),
            key(2, "bbbb", "aaaa"),
            key(3, "cccc", "twin"),
            key(4, "dddd", "twin"),
        ]
    }

    #[test]
    fn uuid_wins_over_name() {
        let keys = keys();
        assert_eq!(
            select(&keys, &ServerSelector::UuidOrName("aaaa".into())).unwrap(),
            1
        );
        assert_eq!(
            select(&keys, &ServerSelector::Name("aaaa".into())).unwrap(),
            2
        );
        assert_eq!(
            select(&keys, &ServerSelector::UuidOrName("main".into())).unwrap(),
            1
        );
        assert_eq!(
            select(&keys, &ServerSelector::Uuid("dddd".into())).unwrap(),
            4
        );
    }

    #[test]
    fn misses_and_ambiguity() {
        let keys = keys();
        assert_eq!(
            select(&keys, &ServerSelector::Uuid("main".into()))
                .unwrap_err()
                .to_string(),
            r#"no server has uuid "main""#
        );
        assert_eq!(
            select(&keys, &ServerSelector::UuidOrName("zzz".into()))
                .unwrap_err()
                .to_string(),
            r#"no server has uuid or name "zzz""#
        );
        assert_eq!(
            select(&keys, &ServerSelector::Name("twin".into()))
                .unwrap_err()
                .to_string(),
            r#"2 servers have name "twin" (server ids 3, 4); the selection is ambiguous"#
        );
        assert_eq!(
            select(&keys, &ServerSelector::Any).unwrap_err().to_string(),
            "the config database has 4 servers; choose one by uuid or name"
        );
        assert_eq!(select(&keys[..1], &ServerSelector::Any).unwrap(), 1);
        assert_eq!(
            select(&[], &ServerSelector::Any).unwrap_err().to_string(),
            "the config database has 0 servers; choose one by uuid or name"
        );
    }

    #[test]
    fn null_uuid_or_name_never_matches() {
        let keys = [ServerKey {
            id: 7,
            uuid: None,
            name: None,
        }];
        assert!(select(&keys, &ServerSelector::Name(String::new())).is_err());
        assert!(select(&keys, &ServerSelector::Uuid(String::new())).is_err());
        assert_eq!(select(&keys, &ServerSelector::Any).unwrap(), 7);
    }
}
