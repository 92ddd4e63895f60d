//! Replacing a config database's contents with imported rows, in one
//! transaction, as `m2sh load` replaces them.
//!
//! Owns: which tables are replaced and how, the SQL of each row, and the
//! `log` row of the load. Does not own: the rows (`import`), the schema
//! text (`schema`) or the log's columns (`deploy_log`).
//!
//! m2sh drops and recreates every Mongrel2 table but `log`, imports the
//! default mimetypes and inserts the rows. Here the same tables are dropped
//! and then made by Kennel's schema ([`SCHEMA_SQL`], whose Mongrel2 part is
//! m2sh's own table definitions and default mimetypes), which also creates
//! `log` and Kennel's `kennel_*` tables when missing. The rows of the
//! `kennel_*` tables are deleted: they are keyed by the ids of rows that
//! are replaced, and a `.conf` cannot describe them.

use std::path::Path;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Transaction};

use super::import::{Rows, Text};
use crate::config::deploy_log::{self, Entry};
use crate::config::schema::in_write_transaction;
use crate::config::{ConfigError, SCHEMA_SQL};

/// The tables `m2sh load` drops and recreates, in its order.
const REPLACED_TABLES: &[&str] = &[
    "server",
    "host",
    "handler",
    "proxy",
    "route",
    "statistic",
    "mimetype",
    "setting",
    "directory",
    "filter",
    "xrequest",
];

/// A `.conf` string, bound as SQLite text byte for byte (as m2sh's `%Q`
/// stores it, UTF-8 or not).
fn text(bytes: Text<'_>) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(bytes))
}

/// Replaces the config in `db` (created if missing) with `rows`, and adds
/// `log` if given; all or nothing.
pub(crate) fn replace(db: &Path, rows: &Rows<'_>, log: Option<&Entry>) -> Result<(), ConfigError> {
    in_write_transaction(db, |tx| {
        recreate_tables(tx)?;
        insert(tx, rows)?;
        match log {
            Some(entry) => deploy_log::add(tx, entry),
            None => Ok(()),
        }
    })
}

fn recreate_tables(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    // Kennel's SQLite enforces foreign keys (`kennel_handler` names
    // `handler` rows); the rows that name replaced ones go, and the check
    // waits for the commit, when the tables are whole again.
    tx.execute_batch("PRAGMA defer_foreign_keys = ON")?;
    let kennel_tables: Vec<String> = tx
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'kennel\\_%' ESCAPE '\\'",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for table in kennel_tables {
        tx.execute_batch(&format!("DELETE FROM \"{}\"", table.replace('"', "\"\"")))?;
    }
    for table in REPLACED_TABLES {
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    tx.execute_batch(SCHEMA_SQL)
}

fn insert(tx: &Transaction<'_>, rows: &Rows<'_>) -> rusqlite::Result<()> {
    // Ids are given: they are what SQLite would give in the new tables
    // (1, 2, … in insertion order), and the rows refer to each other by
    // them.
    let ids = 1i64..;
    let mut stmt = tx.prepare(
        "INSERT INTO server (id, uuid, access_log, error_log, pid_file, control_port, chroot, \
         default_host, name, bind_addr, port, use_ssl) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?;
    for (id, s) in ids.clone().zip(&rows.servers) {
        stmt.execute(params![
            id,
            text(s.uuid),
            text(s.access_log),
            text(s.error_log),
            text(s.pid_file),
            text(s.control_port),
            text(s.chroot),
            text(s.default_host),
            text(s.name),
            text(s.bind_addr),
            text(s.port),
            text(s.use_ssl),
        ])?;
    }
    let mut stmt =
        tx.prepare("INSERT INTO host (id, server_id, name, matching) VALUES (?1, ?2, ?3, ?4)")?;
    for (id, h) in ids.clone().zip(&rows.hosts) {
        stmt.execute(params![id, h.server_id, text(h.name), text(h.matching)])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident, raw_payload, \
         protocol) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (id, h) in ids.clone().zip(&rows.handlers) {
        stmt.execute(params![
            id,
            text(h.send_spec),
            text(h.send_ident),
            text(h.recv_spec),
            text(h.recv_ident),
            h.raw_payload,
            text(h.protocol),
        ])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO directory (id, base, index_file, default_ctype, cache_ttl) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (id, d) in ids.clone().zip(&rows.dirs) {
        stmt.execute(params![
            id,
            text(d.base),
            text(d.index_file),
            text(d.default_ctype),
            text(d.cache_ttl),
        ])?;
    }
    let mut stmt = tx.prepare("INSERT INTO proxy (id, addr, port) VALUES (?1, ?2, ?3)")?;
    for (id, p) in ids.clone().zip(&rows.proxies) {
        stmt.execute(params![id, text(p.addr), text(p.port)])?;
    }
    let mut stmt = tx.prepare(
        "INSERT INTO route (id, path, host_id, target_id, target_type) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (id, r) in ids.clone().zip(&rows.routes) {
        stmt.execute(params![
            id,
            text(r.path),
            r.host_id,
            r.target_id,
            r.target_type
        ])?;
    }
    for (table, plugins) in [("filter", &rows.filters), ("xrequest", &rows.xrequests)] {
        let mut stmt = tx.prepare(&format!(
            "INSERT INTO {table} (id, server_id, name, settings) VALUES (?1, ?2, ?3, ?4)"
        ))?;
        for (id, p) in ids.clone().zip(plugins) {
            stmt.execute(params![id, p.server_id, text(p.name), text(&p.settings)])?;
        }
    }
    let mut stmt = tx.prepare("INSERT INTO setting (id, key, value) VALUES (?1, ?2, ?3)")?;
    for (id, (key, value)) in ids.zip(&rows.settings) {
        stmt.execute(params![id, text(key), text(value)])?;
    }
    let mut stmt = tx.prepare("DELETE FROM mimetype WHERE extension = ?1")?;
    for ext in &rows.mimetype_deletions {
        stmt.execute(params![text(ext)])?;
    }
    Ok(())
}
