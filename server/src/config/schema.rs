//! The config database's schema: `config.sqlite.sql` and applying SQL to a
//! database file.
//!
//! Owns: the schema text, which tables a config database must have, and
//! [`apply_sql`] (used by the `kennel load` CLI) with the write transaction
//! it runs in (also used by the `.conf` import). Does not own: reading the
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
///
/// SQL files often carry their own `BEGIN;` … `COMMIT;`: those statements
/// (and `END`) are skipped, since the whole file already runs in one
/// transaction. A `ROLLBACK` of that transaction is refused; savepoints work.
pub fn apply_sql(db: &Path, sql: &str) -> Result<(), ConfigError> {
    in_write_transaction(db, |tx| {
        let schema = if table_exists(tx, "server")? {
            kennel_additions_sql()
        } else {
            SCHEMA_SQL
        };
        tx.execute_batch(schema)?;
        run_statements(tx, sql)
    })
}

/// Opens the database at `db` (created if missing) and runs `work` in one
/// write transaction (taken at once, so no other writer interleaves),
/// committed only if `work` succeeds. Errors carry the file and SQLite's
/// message.
pub(crate) fn in_write_transaction(
    db: &Path,
    work: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
) -> Result<(), ConfigError> {
    let apply = |source| ConfigError::Apply {
        path: db.to_owned(),
        source,
    };
    let mut conn = Connection::open(db).map_err(|source| ConfigError::Open {
        path: db.to_owned(),
        source,
    })?;
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(apply)?;
    work(&tx).map_err(apply)?;
    tx.commit().map_err(apply)
}

/// Runs every statement of `sql` inside the caller's transaction, skipping
/// the file's own transaction control.
fn run_statements(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    use rusqlite::fallible_iterator::FallibleIterator;

    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Some(mut stmt) = batch.next()? {
        let text = stmt.expanded_sql().unwrap_or_default();
        match first_keyword(&text).as_str() {
            "BEGIN" | "COMMIT" | "END" => continue,
            "ROLLBACK" if !text.to_ascii_uppercase().contains(" TO ") => {
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISUSE),
                    Some(
                        "the SQL file rolls back its transaction; kennel load runs the \
                         whole file as one transaction, so remove the ROLLBACK"
                            .into(),
                    ),
                ));
            }
            _ => {}
        }
        let mut rows = stmt.raw_query();
        while rows.next()?.is_some() {}
    }
    Ok(())
}

/// The first SQL keyword of a statement, upper-cased, after any leading
/// `--` and `/* */` comments.
fn first_keyword(mut text: &str) -> String {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = text.strip_prefix("/*") {
            text = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    text.chars()
        .take_while(char::is_ascii_alphabetic)
        .collect::<String>()
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keyword_skips_comments() {
        assert_eq!(first_keyword("  begin;"), "BEGIN");
        assert_eq!(first_keyword("-- a\n/* b */ Commit"), "COMMIT");
        assert_eq!(first_keyword("INSERT INTO x"), "INSERT");
        assert_eq!(first_keyword("-- only a comment"), "");
    }

    #[test]
    fn files_with_their_own_transaction_apply_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.sqlite");
        apply_sql(
            &db,
            "BEGIN;\nINSERT INTO setting (key, value) VALUES ('a', '1');\nCOMMIT;\n",
        )
        .unwrap();
        let bad = "BEGIN TRANSACTION;\nINSERT INTO setting (key, value) VALUES ('b', '2');\nINSERT INTO nope VALUES (1);\nEND;";
        let err = apply_sql(&db, bad).unwrap_err().to_string();
        assert!(err.contains("no such table: nope"), "{err}");
        let err = apply_sql(&db, "BEGIN; DELETE FROM setting; ROLLBACK;")
            .unwrap_err()
            .to_string();
        assert!(err.contains("remove the ROLLBACK"), "{err}");
        let conn = Connection::open(&db).unwrap();
        let keys: Vec<String> = conn
            .prepare("SELECT key FROM setting ORDER BY key")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(keys, ["a"]);
        // Savepoints are fine, and a SELECT in the file is harmless.
        apply_sql(&db, "SAVEPOINT s; INSERT INTO setting (key, value) VALUES ('c', '3'); ROLLBACK TO s; RELEASE s; SELECT 1;").unwrap();
    }

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
