//! m2sh's deployment log: the `log` table of a config database, which
//! `m2sh commit` adds to, `m2sh log` prints, and `m2sh load` records every
//! load in (`mongrel2/tools/m2sh/src/commands/logging.c`).
//!
//! Owns: an entry's columns and m2sh's defaults for them (who: the login
//! name, from `getlogin()` and then `$LOGNAME`; where: the host name),
//! adding an entry, and reading and printing the log as m2sh prints it.
//! Called by the CLI (`kennel commit`, `kennel log`) and by the `.conf`
//! import (`kennel load-conf`). Does not create the table: the schema does.

use std::fmt;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::schema::table_exists;
use super::ConfigError;

/// One entry to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `who`: the user.
    pub who: String,
    /// `what` was done.
    pub what: String,
    /// `location`: where (m2sh's `-where`; the host name by default).
    pub location: String,
    /// `how` it was done (for a load, the `.conf` file).
    pub how: Option<String>,
    /// `why`.
    pub why: Option<String>,
}

/// Why an entry cannot be made or added.
#[derive(Debug, thiserror::Error)]
pub enum DeployLogError {
    /// Neither `getlogin()` nor `$LOGNAME` says who the user is.
    #[error(
        "cannot tell who you are: getlogin() found no login and LOGNAME is not set (set LOGNAME)"
    )]
    NoLoginName,
    /// The host name cannot be read.
    #[error("cannot read this machine's host name ({0}); say where with --where")]
    HostName(std::io::Error),
    /// The database is missing, not a config database, or failed.
    #[error(transparent)]
    Database(#[from] ConfigError),
}

impl DeployLogError {
    /// Whether the fault is the config database's (rather than the
    /// environment's).
    pub fn is_database(&self) -> bool {
        matches!(self, DeployLogError::Database(_))
    }
}

impl Entry {
    /// An entry by this user, on this machine unless `location` says
    /// otherwise, with m2sh's lookups for both.
    pub fn by_this_user(
        what: String,
        why: Option<String>,
        location: Option<String>,
        how: Option<String>,
    ) -> Result<Entry, DeployLogError> {
        let who = login_name().ok_or(DeployLogError::NoLoginName)?;
        let location = match location {
            Some(l) => l,
            None => host_name().map_err(DeployLogError::HostName)?,
        };
        Ok(Entry {
            who,
            what,
            location,
            how,
            why,
        })
    }
}

/// Who the user is, as m2sh asks: the login name of the controlling
/// terminal (`getlogin(3)`), else `$LOGNAME`.
pub fn login_name() -> Option<String> {
    crate::sys::login_name().or_else(|| std::env::var("LOGNAME").ok())
}

/// This machine's host name (`gethostname(2)`).
pub fn host_name() -> std::io::Result<String> {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .map_err(std::io::Error::from)
}

/// Adds `entry` on an open connection (inside the caller's transaction,
/// if any); `happened_at` is SQLite's `CURRENT_TIMESTAMP`.
pub fn add(conn: &Connection, entry: &Entry) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO log (who, what, location, how, why) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![entry.who, entry.what, entry.location, entry.how, entry.why],
    )
    .map(|_| ())
}

/// Opens the existing config database `db` and checks it has a `log`
/// table.
fn open(db: &Path, flags: OpenFlags) -> Result<Connection, ConfigError> {
    let conn = Connection::open_with_flags(db, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX).map_err(
        |source| ConfigError::Open {
            path: db.to_owned(),
            source,
        },
    )?;
    let exists = table_exists(&conn, "log").map_err(|source| ConfigError::Query {
        table: "log",
        source,
    })?;
    if exists {
        Ok(conn)
    } else {
        Err(ConfigError::MissingTable { table: "log" })
    }
}

/// Adds `entry` to the log of the config database `db` (which must exist),
/// as `m2sh commit` does.
pub fn commit(db: &Path, entry: &Entry) -> Result<(), ConfigError> {
    let conn = open(db, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    add(&conn, entry).map_err(|source| ConfigError::Apply {
        path: db.to_owned(),
        source,
    })
}

/// One printed line of the log: `happened_at, who, location, how, what,
/// why`, the columns `m2sh log` prints.
#[derive(Debug, Clone, PartialEq)]
pub struct Line(pub Vec<Value>);

impl fmt::Display for Line {
    /// m2sh's `print_datum` for each column, each followed by a space:
    /// text as it is, integers in decimal, floats with six decimals, NULL
    /// as `(null)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for value in &self.0 {
            match value {
                Value::Null => f.write_str("(null)")?,
                Value::Integer(n) => write!(f, "{n}")?,
                Value::Real(x) => write!(f, "{x:.6}")?,
                Value::Text(s) => f.write_str(s)?,
                Value::Blob(b) => f.write_str(&String::from_utf8_lossy(b))?,
            }
            f.write_str(" ")?;
        }
        Ok(())
    }
}

/// The heading `m2sh log` prints before the lines.
pub const HEADING: &str = "LOG MESSAGES:\n------";

/// The log of the config database `db`, oldest first (m2sh orders by
/// `happened_at`; entries of the same second stay in the order added).
pub fn read(db: &Path) -> Result<Vec<Line>, ConfigError> {
    let conn = open(db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let query = |source| ConfigError::Query {
        table: "log",
        source,
    };
    let mut stmt = conn
        .prepare(
            "SELECT happened_at, who, location, how, what, why FROM log ORDER BY happened_at, id",
        )
        .map_err(query)?;
    let lines = stmt
        .query_map([], |row| {
            (0..6)
                .map(|i| row.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Line)
        })
        .map_err(query)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(query)?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_print_as_m2sh_prints_them() {
        let line = Line(vec![
            Value::Text("2026-01-02 03:04:05".into()),
            Value::Text("alice".into()),
            Value::Integer(7),
            Value::Real(1.5),
            Value::Text("load".into()),
            Value::Null,
        ]);
        assert_eq!(
            line.to_string(),
            "2026-01-02 03:04:05 alice 7 1.500000 load (null) "
        );
    }

    #[test]
    fn commit_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("c.sqlite");
        super::super::apply_sql(&db, "").unwrap();
        let entry = Entry {
            who: "alice".into(),
            what: "deployed".into(),
            location: "web1".into(),
            how: Some("kennel".into()),
            why: None,
        };
        commit(&db, &entry).unwrap();
        commit(
            &db,
            &Entry {
                what: "again".into(),
                ..entry
            },
        )
        .unwrap();
        let lines: Vec<String> = read(&db)
            .unwrap()
            .iter()
            .map(|l| l.to_string()[20..].to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "alice web1 kennel deployed (null) ",
                "alice web1 kennel again (null) "
            ]
        );
    }

    #[test]
    fn a_database_without_a_log_table_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("n.sqlite");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE other (x)")
            .unwrap();
        let err = read(&db).unwrap_err().to_string();
        assert_eq!(err, "not a Mongrel2 config database: table log is missing");
    }
}
