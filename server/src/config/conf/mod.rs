//! Mongrel2's `.conf` files, imported into a config database exactly as
//! `m2sh load -config FILE.conf -db FILE` imports them (`kennel
//! load-conf`).
//!
//! Owns: the `.conf` language and its meaning, and replacing a database's
//! config with what a file says. The work goes in four steps, one module
//! each, all but the last pure:
//!
//! - `lexer`: bytes → tokens (m2sh's `lexer.rl`);
//! - `parser`: tokens → a tree of values with positions (`parser.y`);
//! - `import`: the tree → the rows of every config table, with m2sh's
//!   defaults, order, ids and quirks (`config_file.c`, `ast.c`), or a
//!   precise error;
//! - `write`: the rows → the database, in one transaction, with the `log`
//!   row m2sh adds for a load.
//!
//! `ternary_tree` reproduces the order m2sh walks its tables in, which
//! decides the ids.
//!
//! The result equals, table by table and row by row, what `m2sh load`
//! makes from the same file (the tests compare the two on every example
//! that ships with Mongrel2), except the `log` row's `happened_at` (the
//! time of the load) and these deliberate differences:
//!
//! - anything m2sh reports as an error is an error here, and nothing
//!   changes; m2sh prints it, loads what it can and exits 0;
//! - the database gets Kennel's whole schema (its `kennel_*` tables too,
//!   emptied);
//! - when the user cannot be found (no login, no `$LOGNAME`) or the host
//!   name cannot be read, the load is not logged, as with m2sh, but a
//!   warning says so.
//!
//! Does not own: whether the config can be served (`kennel check`, i.e.
//! [`crate::config::load`]); the `log` table's format
//! ([`crate::config::deploy_log`]).

mod import;
mod lexer;
mod parser;
mod ternary_tree;
mod write;

use std::path::{Path, PathBuf};

pub use lexer::Position;

use super::deploy_log::{DeployLogError, Entry};
use super::ConfigError;

/// Why a `.conf` was not loaded. Nothing in the database was changed.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// The file cannot be read.
    #[error("{}: {source}", .path.display())]
    Read {
        /// The `.conf` file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file breaks the `.conf` grammar.
    #[error("{}:{pos}: {message}", .path.display())]
    Syntax {
        /// The `.conf` file.
        path: PathBuf,
        /// Where.
        pos: Position,
        /// What was expected and what was found.
        message: String,
    },
    /// The file is well-formed but says something m2sh cannot load: a
    /// missing or mistyped parameter, an unknown class, a name that names
    /// nothing.
    #[error("{}{}: {message}", .path.display(), .pos.map(|p| format!(":{p}")).unwrap_or_default())]
    Invalid {
        /// The `.conf` file.
        path: PathBuf,
        /// Where, when it is about one place.
        pos: Option<Position>,
        /// What is wrong.
        message: String,
    },
    /// The database cannot be opened or written.
    #[error(transparent)]
    Database(#[from] ConfigError),
}

/// What a load put in the database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// `server` rows.
    pub servers: usize,
    /// `host` rows.
    pub hosts: usize,
    /// `route` rows.
    pub routes: usize,
    /// `handler` rows.
    pub handlers: usize,
    /// `directory` rows.
    pub dirs: usize,
    /// `proxy` rows.
    pub proxies: usize,
    /// `filter` rows.
    pub filters: usize,
    /// `xrequest` rows.
    pub xrequests: usize,
    /// `setting` rows.
    pub settings: usize,
    /// What m2sh would have done silently, each as `FILE:LINE:COLUMN:
    /// message`.
    pub warnings: Vec<String>,
    /// Whether the load was recorded in the `log` table.
    pub logged: bool,
}

/// Loads the `.conf` file `conf` into the config database `db` (created if
/// missing), replacing its config, as `m2sh load -config CONF -db DB`
/// does, and logs the load under this user's login name.
pub fn load_conf(conf: &Path, db: &Path) -> Result<LoadReport, ConfError> {
    // m2sh's entry for a load: what "load", why "command", how the file
    // as it was named.
    let entry = Entry::by_this_user(
        "load".into(),
        Some("command".into()),
        None,
        Some(conf.to_string_lossy().into_owned()),
    );
    load_conf_logging(conf, db, entry)
}

/// [`load_conf`] with the `log` entry given (or why there is none).
fn load_conf_logging(
    conf: &Path,
    db: &Path,
    entry: Result<Entry, DeployLogError>,
) -> Result<LoadReport, ConfError> {
    let text = std::fs::read(conf).map_err(|source| ConfError::Read {
        path: conf.to_owned(),
        source,
    })?;
    let doc = parser::parse(&text).map_err(|e| ConfError::Syntax {
        path: conf.to_owned(),
        pos: e.pos,
        message: e.message,
    })?;
    let import::Import {
        rows,
        warnings: mut problems,
    } = import::import(&doc).map_err(|e| ConfError::Invalid {
        path: conf.to_owned(),
        pos: e.pos,
        message: e.message,
    })?;
    problems.sort_by_key(|w| w.pos);
    let mut warnings: Vec<String> = problems
        .iter()
        .map(|w| match w.pos {
            Some(pos) => format!("{}:{pos}: {}", conf.display(), w.message),
            None => format!("{}: {}", conf.display(), w.message),
        })
        .collect();
    let entry = match entry {
        Ok(entry) => Some(entry),
        Err(e) => {
            warnings.push(format!("the load is not logged, as with m2sh: {e}"));
            None
        }
    };
    write::replace(db, &rows, entry.as_ref())?;
    Ok(LoadReport {
        servers: rows.servers.len(),
        hosts: rows.hosts.len(),
        routes: rows.routes.len(),
        handlers: rows.handlers.len(),
        dirs: rows.dirs.len(),
        proxies: rows.proxies.len(),
        filters: rows.filters.len(),
        xrequests: rows.xrequests.len(),
        settings: rows.settings.len(),
        warnings,
        logged: entry.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = r#"
chat = Handler(send_spec='tcp://127.0.0.1:9999', send_ident='id',
               recv_spec='tcp://127.0.0.1:9998', recv_ident='')
main = Server(uuid="u1", access_log="/logs/a.log", error_log="/logs/e.log",
              pid_file="/run/m.pid", default_host="localhost", name="main", port=6767,
              hosts=[Host(name="localhost", routes={'/chat/': chat, '/': chat})])
settings = {"zeromq.threads": 1}
servers = [main]
"#;

    fn entry(conf: &Path) -> Entry {
        Entry {
            who: "tester".into(),
            what: "load".into(),
            location: "here".into(),
            how: Some(conf.display().to_string()),
            why: Some("command".into()),
        }
    }

    fn count(db: &Path, sql: &str) -> i64 {
        rusqlite::Connection::open(db)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn loads_replace_the_config_and_keep_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("site.conf");
        let db = dir.path().join("config.sqlite");
        std::fs::write(&conf, SITE).unwrap();
        // A database with a config (and a Kennel option) already in it.
        crate::config::apply_sql(
            &db,
            "INSERT INTO server (id, uuid, default_host, port) VALUES (9, 'old', 'x', 1);
             INSERT INTO handler (id, send_spec) VALUES (5, 'tcp://old');
             INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (5, 10);
             INSERT INTO log (who, what) VALUES ('earlier', 'commit');",
        )
        .unwrap();
        for _ in 0..2 {
            let report = load_conf_logging(&conf, &db, Ok(entry(&conf))).unwrap();
            assert_eq!(
                (report.servers, report.hosts, report.routes, report.handlers),
                (1, 1, 2, 1)
            );
            assert_eq!(report.settings, 1);
        }
        assert_eq!(count(&db, "SELECT count(*) FROM server"), 1);
        assert_eq!(count(&db, "SELECT id FROM server WHERE uuid = 'u1'"), 1);
        assert_eq!(count(&db, "SELECT count(*) FROM kennel_handler"), 0);
        assert_eq!(count(&db, "SELECT count(*) FROM mimetype"), 857);
        assert_eq!(
            count(&db, "SELECT count(*) FROM log"),
            3,
            "the old entry and two loads"
        );
        // The result is a config Kennel serves.
        let snapshot = crate::config::load(&db, &crate::config::ServerSelector::Any).unwrap();
        assert_eq!(snapshot.server.name, "main");
    }

    #[test]
    fn a_bad_file_changes_nothing_and_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("site.conf");
        let db = dir.path().join("config.sqlite");
        std::fs::write(&conf, SITE).unwrap();
        let report = load_conf_logging(&conf, &db, Err(DeployLogError::NoLoginName)).unwrap();
        assert!(!report.logged);
        assert!(
            report.warnings[0]
                .starts_with("the load is not logged, as with m2sh: cannot tell who you are"),
            "{:?}",
            report.warnings
        );
        assert_eq!(count(&db, "SELECT count(*) FROM log"), 0);
        std::fs::write(&conf, SITE.replace("port=6767,", "port=6767,,")).unwrap();
        let err = load_conf(&conf, &db).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:5:87: expected a parameter (name = value) after ',', found ','",
                conf.display()
            )
        );
        std::fs::write(&conf, SITE.replace("uuid=\"u1\", ", "")).unwrap();
        let err = load_conf(&conf, &db).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:4:8: Server(...) has no uuid (a string)", conf.display())
        );
        assert_eq!(count(&db, "SELECT count(*) FROM route"), 2);
        let missing = dir.path().join("nope.conf");
        let err = load_conf(&missing, &db).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
    }
}
