//! The m2sh-made fixture (`tests/fixtures/mongrel2.sqlite`) loaded by Kennel,
//! and `config.sqlite.sql` compared with it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kennel::config::{
    self, apply_sql, list_servers, ConfigError, Dir, FileMode, Handler, Plugin, Protocol, Proxy,
    Server, ServerSelector, Settings, Snapshot, Target,
};
use rusqlite::{Connection, OpenFlags};

const MAIN_UUID: &str = "f400bf85-4538-4f7a-8908-67e313d515c2";
const ADMIN_UUID: &str = "0c2ab3d2-0b6b-4d12-9a5c-1a0b38c3d9aa";
const CHAT_IDENT: &str = "54c6755b-9628-40a4-9a2d-cc82a816345e";
const TNS_IDENT: &str = "34f9ceee-cd52-4b7f-b197-88bf2f0ec378";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mongrel2.sqlite")
}

/// A writable copy of the fixture in a temp dir.
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.sqlite");
    std::fs::copy(fixture(), &path).unwrap();
    (dir, path)
}

fn load(selector: ServerSelector) -> Result<Snapshot, ConfigError> {
    config::load(&fixture(), &selector)
}

fn main_server() -> Snapshot {
    load(ServerSelector::UuidOrName("main".into())).unwrap()
}

fn routes(snapshot: &Snapshot, host: usize) -> Vec<(String, Target)> {
    snapshot.hosts[host]
        .routes
        .iter()
        .map(|(k, t)| (k.to_owned(), *t))
        .collect()
}

fn route(key: &str, target: Target) -> (String, Target) {
    (key.to_owned(), target)
}

fn chat() -> Handler {
    Handler {
        id: 1,
        row_ids: vec![1],
        send_spec: "tcp://127.0.0.1:9999".into(),
        send_ident: CHAT_IDENT.into(),
        recv_spec: "tcp://127.0.0.1:9998".into(),
        recv_ident: String::new(),
        raw_payload: false,
        protocol: Protocol::Json,
        connect_wait_ms: 2500,
    }
}

fn tns() -> Handler {
    Handler {
        id: 2,
        row_ids: vec![2],
        send_spec: "tcp://127.0.0.1:9997".into(),
        send_ident: TNS_IDENT.into(),
        recv_spec: "tcp://127.0.0.1:9996".into(),
        recv_ident: TNS_IDENT.into(),
        raw_payload: true,
        protocol: Protocol::Tnetstring,
        connect_wait_ms: 2500,
    }
}

#[test]
fn main_server_field_by_field() {
    let s = load(ServerSelector::Uuid(MAIN_UUID.into())).unwrap();
    assert_eq!(
        s.server,
        Server {
            id: 1,
            uuid: MAIN_UUID.into(),
            name: "main".into(),
            access_log: "/logs/access.log".into(),
            error_log: "/logs/error.log".into(),
            pid_file: "/run/mongrel2.pid".into(),
            chroot: "./".into(),
            default_host: "localhost".into(),
            bind_addr: "0.0.0.0".into(),
            port: 6767,
            use_ssl: false,
            control_port: String::new(),
        }
    );
    assert_eq!(
        s.control_port(),
        "ipc://run/control",
        "empty column → setting"
    );

    let hosts: Vec<(i64, &str, &str)> = s
        .hosts
        .iter()
        .map(|h| (h.id, h.name.as_str(), h.matching.as_str()))
        .collect();
    assert_eq!(
        hosts,
        [
            (1, "localhost", "localhost"),
            (2, "wildcard", "(.+)example.com"),
            (3, "other.test", "other.test"),
        ]
    );
    assert_eq!(s.default_host, 0);
    assert_eq!(s.default_host().name, "localhost");

    // Targets are numbered in the order routes first use them.
    assert_eq!(
        routes(&s, 0),
        [
            route("/", Target::Proxy(0)),
            route("/app/", Target::Proxy(0)),
            route("/chat/", Target::Handler(0)),
            route("/tns/", Target::Handler(1)),
            route("/static/", Target::Dir(0)),
            route(r"/users/(\d+)$", Target::Handler(0)),
            route(r"/img/(.*\.jpg)", Target::Dir(0)),
        ]
    );
    assert_eq!(
        routes(&s, 1),
        [
            route("/", Target::Dir(1)),
            route("/api/", Target::Handler(1))
        ]
    );
    assert_eq!(routes(&s, 2), [route("/", Target::Handler(0))]);

    assert_eq!(s.handlers, [chat(), tns()]);
    assert_eq!(
        s.dirs,
        [
            Dir {
                id: 1,
                base: "static/".into(),
                index_file: "index.html".into(),
                default_ctype: "text/plain".into(),
                cache_ttl: 60,
            },
            Dir {
                id: 2,
                base: "docs/html/".into(),
                index_file: "index.htm".into(),
                default_ctype: "application/octet-stream".into(),
                cache_ttl: 0,
            },
        ]
    );
    assert_eq!(
        s.proxies,
        [Proxy {
            id: 1,
            addr: "127.0.0.1".into(),
            port: 8080,
        }],
        "only the proxies this server's routes use"
    );
    assert!(s.filters.is_empty());
    assert!(s.xrequests.is_empty());
}

#[test]
fn settings_from_the_fixture() {
    let s = main_server();
    assert_eq!(
        s.settings,
        Settings {
            zeromq_threads: 1,
            limits_buffer_size: Some(8192),
            limits_content_length: 102400,
            upload_temp_store: Some("/tmp/upload.XXXXXX".into()),
            server_daemonize: false,
            kennel_handler_connect_wait_ms: 2500,
            ..Settings::default()
        }
    );
    assert_eq!(s.settings.upload_temp_store_mode, FileMode(0o600));
    assert_eq!(
        s.warnings,
        [r#"setting 2: unknown key "frobnicate.level" (ignored)"#]
    );
}

#[test]
fn mimetypes_from_the_fixture() {
    let s = main_server();
    // m2sh imported 857 defaults; its `mimetypes` dict then deleted `.txt`
    // and failed to insert both custom rows (tests/fixtures/README.md).
    assert_eq!(s.mimetypes.len(), 856);
    assert_eq!(s.mimetypes.lookup("/index.html"), Some("text/html"));
    assert_eq!(s.mimetypes.lookup("/A/PHOTO.JPG"), Some("image/jpeg"));
    assert_eq!(s.mimetypes.lookup("/x.css"), Some("text/css"));
    assert_eq!(
        s.mimetypes.lookup("/fonts/a.pcf.Z"),
        Some("application/x-font")
    );
    assert_eq!(s.mimetypes.lookup("/notes.txt"), None);
    assert_eq!(s.mimetypes.lookup("/a.kennel"), None);
}

/// The admin server has `use_ssl = 1`: the config loads (its certificate
/// files are read when TLS is set up, see `tests/tls.rs`).
#[test]
fn admin_server_with_tls_loads_as_tls() {
    let s = load(ServerSelector::UuidOrName(ADMIN_UUID.into())).unwrap();
    assert!(s.server.use_ssl);
}

/// A copy of the fixture with the admin server's `use_ssl` turned off.
fn admin_without_tls() -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = fixture_copy();
    apply_sql(&path, "UPDATE server SET use_ssl = 0 WHERE id = 2").unwrap();
    (dir, path)
}

#[test]
fn admin_server_with_control_port_and_plugins() {
    let (_dir, path) = admin_without_tls();
    let s = config::load(&path, &ServerSelector::UuidOrName(ADMIN_UUID.into())).unwrap();
    assert_eq!(
        s.server,
        Server {
            id: 2,
            uuid: ADMIN_UUID.into(),
            name: "admin".into(),
            access_log: "/logs/admin_access.log".into(),
            error_log: "/logs/admin_error.log".into(),
            pid_file: "/run/admin.pid".into(),
            chroot: String::new(),
            default_host: "admin.local".into(),
            bind_addr: "127.0.0.1".into(),
            port: 6768,
            use_ssl: false,
            control_port: "ipc://run/admin_control".into(),
        }
    );
    assert_eq!(s.control_port(), "ipc://run/admin_control");
    assert_eq!(s.hosts.len(), 1);
    assert_eq!(
        (s.hosts[0].id, s.hosts[0].matching.as_str()),
        (4, "admin.local")
    );
    assert_eq!(
        routes(&s, 0),
        [
            route("/", Target::Proxy(0)),
            route("/chat/", Target::Handler(0))
        ]
    );
    assert_eq!(
        s.proxies,
        [Proxy {
            id: 2,
            addr: "10.0.0.2".into(),
            port: 9090,
        }]
    );
    assert_eq!(s.handlers, [chat()]);
    assert_eq!(
        s.filters,
        [Plugin {
            id: 1,
            name: "/usr/lib/mongrel2/filters/null.so".into(),
            settings: "53:8:min_size,4:1000#10:extensions,17:6:*.html,5:*.txt,]}".into(),
        }]
    );
    assert_eq!(
        s.xrequests,
        [Plugin {
            id: 1,
            name: "/usr/lib/mongrel2/filters/sendfile.so".into(),
            settings: "0:}".into(),
        }]
    );
    assert_eq!(
        s.warnings,
        [
            r#"setting 2: unknown key "frobnicate.level" (ignored)"#,
            "server 2: 1 filter row(s) and 0 xrequest row(s) configured; \
             Kennel does not run Mongrel2 .so plugins and ignores them \
             (it does the sendfile xrequest itself)",
        ]
    );
}

#[test]
fn selection_by_uuid_name_and_ambiguity() {
    let (_admin_dir, admin) = admin_without_tls();
    let id = |sel| config::load(&admin, &sel).unwrap().server.id;
    assert_eq!(id(ServerSelector::Uuid(MAIN_UUID.into())), 1);
    assert_eq!(id(ServerSelector::Name("admin".into())), 2);
    assert_eq!(id(ServerSelector::UuidOrName("admin".into())), 2);
    let err = |sel| load(sel).unwrap_err().to_string();
    assert_eq!(
        err(ServerSelector::Any),
        "the config database has 2 servers; choose one by uuid or name"
    );
    assert_eq!(
        err(ServerSelector::Uuid("main".into())),
        r#"no server has uuid "main""#
    );
    assert_eq!(
        err(ServerSelector::Name("nobody".into())),
        r#"no server has name "nobody""#
    );
    assert_eq!(
        err(ServerSelector::UuidOrName("nobody".into())),
        r#"no server has uuid or name "nobody""#
    );

    // Two servers with one name: ambiguous; a uuid still picks one.
    let (_dir, path) = admin_without_tls();
    apply_sql(&path, "UPDATE server SET name = 'twin'").unwrap();
    assert_eq!(
        config::load(&path, &ServerSelector::UuidOrName("twin".into()))
            .unwrap_err()
            .to_string(),
        r#"2 servers have name "twin" (server ids 1, 2); the selection is ambiguous"#
    );
    let one = config::load(&path, &ServerSelector::UuidOrName(ADMIN_UUID.into())).unwrap();
    assert_eq!(one.server.id, 2);

    // One server left: `Any` picks it.
    apply_sql(&path, "DELETE FROM server WHERE id = 2").unwrap();
    assert_eq!(
        config::load(&path, &ServerSelector::Any).unwrap().server.id,
        1
    );
}

#[test]
fn a_uuid_wins_over_a_name() {
    let (_dir, path) = admin_without_tls();
    // Server 2's *name* is server 1's uuid.
    apply_sql(
        &path,
        &format!("UPDATE server SET name = '{MAIN_UUID}' WHERE id = 2"),
    )
    .unwrap();
    let s = config::load(&path, &ServerSelector::UuidOrName(MAIN_UUID.into())).unwrap();
    assert_eq!(s.server.id, 1);
    let s = config::load(&path, &ServerSelector::Name(MAIN_UUID.into())).unwrap();
    assert_eq!(s.server.id, 2);
}

#[test]
fn list_servers_reads_every_row() {
    let conn = Connection::open_with_flags(fixture(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let servers = list_servers(&conn).unwrap();
    let names: Vec<(i64, &str, &str)> = servers
        .iter()
        .map(|s| (s.id, s.uuid.as_str(), s.name.as_str()))
        .collect();
    assert_eq!(names, [(1, MAIN_UUID, "main"), (2, ADMIN_UUID, "admin")]);
}

#[test]
fn load_from_inside_a_callers_transaction() {
    let (_dir, path) = fixture_copy();
    let mut conn = Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    tx.execute("UPDATE server SET port = 7000 WHERE id = 1", [])
        .unwrap();
    let s = config::load_from(&tx, &ServerSelector::Name("main".into())).unwrap();
    assert_eq!(s.server.port, 7000, "sees the caller's uncommitted change");
}

#[test]
fn opening_a_missing_file_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sqlite");
    let err = config::load(&path, &ServerSelector::Any).unwrap_err();
    assert!(matches!(err, ConfigError::Open { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot open config database {}: ", path.display())),
        "{err}"
    );
    assert!(!path.exists(), "read-only open must not create the file");
}

// ---- config.sqlite.sql against the m2sh-made database ----

fn tables(conn: &Connection) -> BTreeSet<String> {
    conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

type Column = (i64, String, String, i64, Option<String>, i64);

/// `(cid, name, type, notnull, dflt_value, pk)` of every column.
fn columns(conn: &Connection, table: &str) -> Vec<Column> {
    conn.prepare(&format!("PRAGMA table_info({table})"))
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn mimetype_rows(conn: &Connection) -> Vec<(i64, String, String)> {
    conn.prepare("SELECT id, mimetype, extension FROM mimetype ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn fresh_schema() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.sqlite");
    apply_sql(&path, "").unwrap();
    let conn = Connection::open(&path).unwrap();
    (dir, conn)
}

#[test]
fn schema_matches_m2sh_table_for_table_column_for_column() {
    let m2sh = Connection::open_with_flags(fixture(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let (_dir, fresh) = fresh_schema();
    let m2sh_tables = tables(&m2sh);
    let fresh_tables = tables(&fresh);
    let expected: BTreeSet<String> = [
        "directory",
        "filter",
        "handler",
        "host",
        "log",
        "mimetype",
        "proxy",
        "route",
        "server",
        "setting",
        "statistic",
        "xrequest",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(m2sh_tables, expected);
    let extra: Vec<&String> = fresh_tables.difference(&m2sh_tables).collect();
    assert_eq!(extra, ["kennel_handler"]);
    assert!(m2sh_tables.is_subset(&fresh_tables));
    for table in &m2sh_tables {
        assert_eq!(
            columns(&fresh, table),
            columns(&m2sh, table),
            "table {table}"
        );
    }
    assert_eq!(
        columns(&fresh, "kennel_handler"),
        [
            (0, "handler_id".into(), "INTEGER".into(), 0, None, 1),
            (
                1,
                "connect_wait_ms".into(),
                "INTEGER".into(),
                0,
                Some("NULL".into()),
                0
            ),
        ]
    );
}

#[test]
fn schema_has_m2shs_default_mimetypes() {
    let m2sh = Connection::open_with_flags(fixture(), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let (_dir, fresh) = fresh_schema();
    let fresh_rows = mimetype_rows(&fresh);
    assert_eq!(fresh_rows.len(), 857);
    // The fixture lacks exactly the `.txt` row its `mimetypes` dict deleted.
    let without_txt: Vec<_> = fresh_rows
        .iter()
        .filter(|(_, _, ext)| ext != ".txt")
        .cloned()
        .collect();
    assert_eq!(without_txt, mimetype_rows(&m2sh));
}

#[test]
fn apply_sql_on_an_m2sh_database_adds_only_kennel_tables() {
    let (_dir, path) = fixture_copy();
    apply_sql(
        &path,
        "INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (2, 100);",
    )
    .unwrap();
    let conn = Connection::open(&path).unwrap();
    assert_eq!(mimetype_rows(&conn).len(), 856, "m2sh's rows are kept");
    drop(conn);
    let s = config::load(&path, &ServerSelector::Name("main".into())).unwrap();
    assert_eq!(s.handlers[0].connect_wait_ms, 2500, "the setting");
    assert_eq!(s.handlers[1].connect_wait_ms, 100, "kennel_handler wins");
}

#[test]
fn apply_sql_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    let err = apply_sql(
        &path,
        "INSERT INTO setting (key, value) VALUES ('a', '1'); INSRT INTO oops;",
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Apply { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("applying SQL to {}: ", path.display())),
        "{text}"
    );
    assert!(text.contains("syntax error"), "{text}");
    let conn = Connection::open(&path).unwrap();
    assert!(tables(&conn).is_empty(), "the schema was rolled back too");
}
