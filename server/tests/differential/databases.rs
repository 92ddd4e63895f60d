//! The three kinds of config database a Mongrel2 site comes in, each made
//! for the same site: by Mongrel2's own `m2sh load` from a `.conf`, from
//! Kennel's `config.sqlite.sql` (with `kennel::config::apply_sql`), and
//! from the `config.sql` shipped with Mongrel2's Python library (an older
//! schema: no `server.control_port`, no `filter` or `xrequest` table, no
//! mimetypes), read from the Debian package at test time.
//!
//! Owns: [`SiteRows`] (a site as rows), rendering it as SQL and as an
//! m2sh `.conf`, and [`DbKind::make`]. Used by the differential test (which
//! has Mongrel2 and Kennel serve each kind) and by `config_schemas.rs`
//! (which loads each kind). Programs and files from `mongrel2-core` that
//! are missing fail the test with a message naming the package and the
//! setup script; they never skip it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The schema file of Mongrel2's Python library, as Debian's
/// `mongrel2-core` installs it.
pub const PYTHON_CONFIG_SQL: &str =
    "/usr/share/doc/mongrel2-core/examples/python/mongrel2/sql/config.sql";

/// What to do when something from `mongrel2-core` is missing.
const INSTALL: &str = "install the Debian package mongrel2-core \
     (`bash tests/setup.sh` installs everything the tests need)";

/// How a config database was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// `m2sh load -config site.conf`: Mongrel2's own tool.
    M2sh,
    /// Kennel's `config.sqlite.sql`, then the site's SQL.
    KennelSchema,
    /// Mongrel2's Python library's `config.sql`, then the site's SQL.
    PythonSchema,
}

impl DbKind {
    /// All three, in the order tests run them.
    pub const ALL: [DbKind; 3] = [DbKind::M2sh, DbKind::KennelSchema, DbKind::PythonSchema];

    /// A short name for messages and file names.
    pub fn name(self) -> &'static str {
        match self {
            DbKind::M2sh => "m2sh",
            DbKind::KennelSchema => "config.sqlite.sql",
            DbKind::PythonSchema => "python config.sql",
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            DbKind::M2sh => "m2sh",
            DbKind::KennelSchema => "kennel",
            DbKind::PythonSchema => "python",
        }
    }

    /// Makes `site` as this kind of database in `dir` and returns its path.
    pub fn make(self, site: &SiteRows, dir: &Path) -> PathBuf {
        let db = dir.join(format!("{}.sqlite", self.file_stem()));
        match self {
            DbKind::M2sh => {
                let conf = dir.join(format!("{}.conf", self.file_stem()));
                std::fs::write(&conf, site.conf()).unwrap();
                let out = Command::new(find_program("m2sh"))
                    .args(["load", "-config"])
                    .arg(&conf)
                    .arg("-db")
                    .arg(&db)
                    .current_dir(dir)
                    // m2sh logs the load under the login name (see
                    // tests/fixtures/README.md).
                    .env("LOGNAME", "kennel")
                    .output()
                    .expect("run m2sh");
                let servers = rusqlite::Connection::open(&db)
                    .and_then(|c| c.query_row("SELECT count(*) FROM server", [], |r| r.get(0)))
                    .unwrap_or(0i64);
                assert!(
                    out.status.success() && servers == 1,
                    "m2sh load failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            DbKind::KennelSchema => {
                kennel::config::apply_sql(&db, &site.sql()).expect("the site's SQL");
            }
            DbKind::PythonSchema => {
                let schema = std::fs::read_to_string(PYTHON_CONFIG_SQL).unwrap_or_else(|e| {
                    panic!("cannot read Mongrel2's {PYTHON_CONFIG_SQL} ({e}): {INSTALL}")
                });
                let conn = rusqlite::Connection::open(&db).unwrap();
                conn.execute_batch(&schema)
                    .expect("Mongrel2's python config.sql");
                conn.execute_batch(&site.sql()).expect("the site's SQL");
            }
        }
        db
    }
}

/// Where program `name` is on `PATH`; panics, naming the package to
/// install, when it is not there.
pub fn find_program(name: &str) -> PathBuf {
    find_program_of(name, "mongrel2-core")
}

/// Where program `name` is on `PATH`; panics, naming the Debian `package`
/// it comes with and the setup script, when it is not there.
pub fn find_program_of(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: install the Debian package {package} \
                 (`bash tests/setup.sh` installs everything the tests need)"
            )
        })
}

/// A site as the rows of a config database: one server and what its
/// routes point at. Ids are positions in the vectors, from 1.
#[derive(Debug, Clone)]
pub struct SiteRows {
    pub server: ServerRow,
    pub hosts: Vec<HostRows>,
    pub handlers: Vec<HandlerRow>,
    pub dirs: Vec<DirRow>,
    pub proxies: Vec<ProxyRow>,
    /// `setting` rows: key, value.
    pub settings: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ServerRow {
    pub uuid: String,
    pub name: String,
    pub access_log: String,
    pub error_log: String,
    pub chroot: String,
    pub pid_file: String,
    pub default_host: String,
    pub bind_addr: String,
    pub port: u16,
}

#[derive(Debug, Clone)]
pub struct HostRows {
    pub name: String,
    pub matching: String,
    /// Route key → what it points at.
    pub routes: Vec<(String, TargetRow)>,
}

/// A route's target: an index into [`SiteRows`]' vectors.
#[derive(Debug, Clone, Copy)]
pub enum TargetRow {
    Handler(usize),
    Dir(usize),
    Proxy(usize),
}

#[derive(Debug, Clone)]
pub struct HandlerRow {
    pub send_spec: String,
    pub send_ident: String,
    pub recv_spec: String,
    pub recv_ident: String,
    /// `json` or `tnetstring`.
    pub protocol: String,
}

#[derive(Debug, Clone)]
pub struct DirRow {
    pub base: String,
    pub index_file: String,
    pub default_ctype: String,
    pub cache_ttl: u64,
}

#[derive(Debug, Clone)]
pub struct ProxyRow {
    pub addr: String,
    pub port: u16,
}

/// A column and its value: text, or a number.
type Cell = (&'static str, String);

/// `'text'`: a literal for SQL and for m2sh's `.conf` alike. The `.conf`
/// strings have no escapes, so a quote in a value is refused.
fn text(column: &'static str, value: &str) -> Cell {
    assert!(
        !value.contains(['\'', '"']),
        "no quotes in site values: {value:?}"
    );
    (column, format!("'{value}'"))
}

fn number(column: &'static str, value: impl std::fmt::Display) -> Cell {
    (column, value.to_string())
}

/// `INSERT INTO table (columns) VALUES (values);`
fn insert(table: &str, cells: &[Cell]) -> String {
    let (columns, values): (Vec<&str>, Vec<&str>) =
        cells.iter().map(|(c, v)| (*c, v.as_str())).unzip();
    format!(
        "INSERT INTO {table} ({}) VALUES ({});\n",
        columns.join(", "),
        values.join(", ")
    )
}

/// `name = Class(column=value, ...)` in m2sh's `.conf`.
fn object(name: &str, class: &str, cells: &[Cell]) -> String {
    let args: Vec<String> = cells.iter().map(|(c, v)| format!("{c}={v}")).collect();
    format!("{name} = {class}({})\n", args.join(", "))
}

impl ServerRow {
    /// The columns every schema has (so no `control_port`).
    fn cells(&self) -> Vec<Cell> {
        vec![
            text("uuid", &self.uuid),
            text("name", &self.name),
            text("access_log", &self.access_log),
            text("error_log", &self.error_log),
            text("chroot", &self.chroot),
            text("pid_file", &self.pid_file),
            text("default_host", &self.default_host),
            text("bind_addr", &self.bind_addr),
            number("port", self.port),
        ]
    }
}

impl HandlerRow {
    fn cells(&self) -> Vec<Cell> {
        vec![
            text("send_spec", &self.send_spec),
            text("send_ident", &self.send_ident),
            text("recv_spec", &self.recv_spec),
            text("recv_ident", &self.recv_ident),
            text("protocol", &self.protocol),
        ]
    }
}

impl DirRow {
    fn cells(&self) -> Vec<Cell> {
        vec![
            text("base", &self.base),
            text("index_file", &self.index_file),
            text("default_ctype", &self.default_ctype),
            number("cache_ttl", self.cache_ttl),
        ]
    }
}

impl ProxyRow {
    fn cells(&self) -> Vec<Cell> {
        vec![text("addr", &self.addr), number("port", self.port)]
    }
}

impl TargetRow {
    /// `(target_type, index)`: m2sh's and the `route` table's name.
    fn kind_and_index(self) -> (&'static str, usize) {
        match self {
            TargetRow::Handler(i) => ("handler", i),
            TargetRow::Dir(i) => ("dir", i),
            TargetRow::Proxy(i) => ("proxy", i),
        }
    }
}

/// `cells` with an `id` column first (ids count from 1).
fn with_id(index: usize, mut cells: Vec<Cell>) -> Vec<Cell> {
    cells.insert(0, number("id", index + 1));
    cells
}

impl SiteRows {
    /// The rows as SQL with explicit ids, using only columns every schema
    /// has.
    pub fn sql(&self) -> String {
        let mut sql = insert("server", &with_id(0, self.server.cells()));
        for (i, h) in self.handlers.iter().enumerate() {
            sql += &insert("handler", &with_id(i, h.cells()));
        }
        for (i, d) in self.dirs.iter().enumerate() {
            sql += &insert("directory", &with_id(i, d.cells()));
        }
        for (i, p) in self.proxies.iter().enumerate() {
            sql += &insert("proxy", &with_id(i, p.cells()));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            sql += &insert(
                "host",
                &with_id(
                    i,
                    vec![
                        number("server_id", 1),
                        text("name", &host.name),
                        text("matching", &host.matching),
                    ],
                ),
            );
            for (path, target) in &host.routes {
                let (kind, index) = target.kind_and_index();
                sql += &insert(
                    "route",
                    &[
                        text("path", path),
                        number("host_id", i + 1),
                        number("target_id", index + 1),
                        text("target_type", kind),
                    ],
                );
            }
        }
        for (key, value) in &self.settings {
            sql += &insert("setting", &[text("key", key), text("value", value)]);
        }
        sql
    }

    /// The site as an m2sh `.conf` (PROTOCOL.md §4).
    pub fn conf(&self) -> String {
        let mut conf = String::new();
        for (i, h) in self.handlers.iter().enumerate() {
            conf += &object(&format!("handler{i}"), "Handler", &h.cells());
        }
        for (i, d) in self.dirs.iter().enumerate() {
            conf += &object(&format!("dir{i}"), "Dir", &d.cells());
        }
        for (i, p) in self.proxies.iter().enumerate() {
            conf += &object(&format!("proxy{i}"), "Proxy", &p.cells());
        }
        let mut hosts = Vec::new();
        for (i, host) in self.hosts.iter().enumerate() {
            let routes: Vec<String> = host
                .routes
                .iter()
                .map(|(path, target)| {
                    let (kind, index) = target.kind_and_index();
                    format!("{}: {kind}{index}", text("path", path).1)
                })
                .collect();
            let mut cells = vec![text("name", &host.name), text("matching", &host.matching)];
            cells.push(("routes", format!("{{{}}}", routes.join(", "))));
            conf += &object(&format!("host{i}"), "Host", &cells);
            hosts.push(format!("host{i}"));
        }
        let mut server = self.server.cells();
        server.push(("hosts", format!("[{}]", hosts.join(", "))));
        conf += &object("main", "Server", &server);
        let settings: Vec<String> = self
            .settings
            .iter()
            .map(|(k, v)| format!("\"{k}\": {}", text("value", v).1))
            .collect();
        conf += &format!("settings = {{{}}}\n", settings.join(", "));
        conf += "servers = [main]\n";
        conf
    }
}
