//! The config database's schema: `config.sqlite.sql` and applying SQL to a
//! database file.
//!
//! Owns: the schema text, which tables a config database must have, and
//! [`apply_sql`] (used by the `kennel load` CLI). Does not own: reading the
//! config (see `load`).

use std::path::Path;

use rusqlite::Connection;

use super::ConfigError;

/// Mongrel2 1.12's complete schema with its default mimetypes, followed by
/// Kennel's additions. Every statement is idempotent.
pub const SCHEMA_SQL: &str = include_str!("../../../config.sqlite.sql");

/// The line in [`SCHEMA_SQL`] where Kennel's additions begin.
const KENNEL_PART_MARKER: &str = "-- Part 2: Kennel additions";

/// Tables without which a database is not a Mongrel2 config.
pub(crate) const REQUIRED_TABLES: &[&str] = &[
    "server",
    "host",
    "route",
    "handler",
    "directory",
    "proxy",
    "setting",
    "mimetype",
];

/// Kennel's additions alone (the `kennel_*` tables): what a database made
/// by Mongrel2's `m2sh` lacks.
pub fn kennel_additions_sql() -> &'static str {
    match SCHEMA_SQL.find(KENNEL_PART_MARKER) {
        Some(at) => &SCHEMA_SQL[at..],
        None => unreachable!("config.sqlite.sql lost its {KENNEL_PART_MARKER:?} line"),
    }
}

/// Whether `table` exists in the main database of `conn`.
pub(crate) fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Applies `sql` to the database at `db` (created if missing) in one
/// transaction. If the database has no `server` table, the whole schema
/// ([`SCHEMA_SQL`]) is created first; otherwise only Kennel's missing
/// additions are, so a database made by `m2sh` keeps its rows. On any error
/// nothing is changed and the error carries SQLite's message.
pub fn apply_sql(db: &Path, sql: &str) -> Result<(), ConfigError> {
    let apply = |source| ConfigError::Apply {
        path: db.to_owned(),
        source,
    };
    let mut conn = Connection::open(db).map_err(|source| ConfigError::Open {
        path: db.to_owned(),
        source,
    })?;
    let tx = conn.transaction().map_err(apply)?;
    let schema = if table_exists(&tx, "server").map_err(apply)? {
        kennel_additions_sql()
    } else {
        SCHEMA_SQL
    };
    tx.execute_batch(schema).map_err(apply)?;
    tx.execute_batch(sql).map_err(apply)?;
    tx.commit().map_err(apply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kennel_part_is_the_tail_and_only_creates_kennel_tables() {
        let part = kennel_additions_sql();
        assert!(part.contains("CREATE TABLE IF NOT EXISTS kennel_handler"));
        assert!(!part.contains("CREATE TABLE IF NOT EXISTS server"));
        assert!(!part.contains("INSERT"));
        assert!(SCHEMA_SQL.ends_with(part));
    }

    #[test]
    fn schema_applies_twice_without_change() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM mimetype", [], |r| r.get(0))
                .unwrap()
        };
        let first = count(&conn);
        assert_eq!(first, 857);
        conn.execute_batch(SCHEMA_SQL).unwrap();
        assert_eq!(count(&conn), first);
        for table in REQUIRED_TABLES {
            assert!(table_exists(&conn, table).unwrap(), "{table}");
        }
        assert!(table_exists(&conn, "kennel_handler").unwrap());
    }

    #[test]
    fn reapplying_keeps_an_operators_mimetype_choice() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        conn.execute_batch("UPDATE mimetype SET mimetype = 'text/x-mine' WHERE extension = '.txt'")
            .unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        let types: Vec<String> = conn
            .prepare("SELECT mimetype FROM mimetype WHERE extension = '.txt'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(types, ["text/x-mine"]);
    }
}
