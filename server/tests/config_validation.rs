//! One test per validation error of the config loader, each asserting the
//! exact message, on real SQLite files made from `config.sqlite.sql`.

use std::path::PathBuf;

use kennel::config::{self, apply_sql, ConfigError, Protocol, ServerSelector, Snapshot, Target};

/// A small valid site: one server, one host, a handler, a Dir and a proxy.
const SITE: &str = "
INSERT INTO server (id, uuid, access_log, error_log, chroot, pid_file, default_host, name, port)
    VALUES (1, 'uuid-1', '/logs/access.log', '/logs/error.log', '', '/run/kennel.pid',
            'main', 'main', 8080);
INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'main', 'localhost');
INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
    VALUES (1, 'tcp://127.0.0.1:9999', 'ident-1', 'tcp://127.0.0.1:9998', '');
INSERT INTO directory (id, base, index_file, default_ctype)
    VALUES (1, 'static/', 'index.html', 'text/plain');
INSERT INTO proxy (id, addr, port) VALUES (1, '127.0.0.1', 8081);
INSERT INTO route (id, path, host_id, target_id, target_type) VALUES
    (1, '/handler/', 1, 1, 'handler'),
    (2, '/static/', 1, 1, 'dir'),
    (3, '/', 1, 1, 'proxy');
INSERT INTO setting (id, key, value) VALUES (3, 'zeromq.threads', '1');
";

/// The site plus `change`, in a fresh database file.
fn site_with(change: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.sqlite");
    apply_sql(&path, SITE).unwrap();
    apply_sql(&path, change).unwrap();
    (dir, path)
}

fn load_with(change: &str) -> Result<Snapshot, ConfigError> {
    let (_dir, path) = site_with(change);
    config::load(&path, &ServerSelector::Uuid("uuid-1".into()))
}

fn error_with(change: &str) -> String {
    match load_with(change) {
        Ok(_) => panic!("{change:?} loaded without error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_site_itself_is_valid() {
    let s = load_with("").unwrap();
    let routes: Vec<(&str, Target)> = s.hosts[0].routes.iter().map(|(k, t)| (k, *t)).collect();
    assert_eq!(
        routes,
        [
            ("/handler/", Target::Handler(0)),
            ("/static/", Target::Dir(0)),
            ("/", Target::Proxy(0)),
        ]
    );
    assert_eq!(s.handlers[0].connect_wait_ms, 5000, "the default");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn unknown_target_type() {
    assert_eq!(
        error_with("UPDATE route SET target_type = 'hander' WHERE id = 1"),
        r#"route 1: column target_type: unknown target type "hander" (expected handler, dir or proxy)"#
    );
}

#[test]
fn default_host_names_no_host() {
    assert_eq!(
        error_with("UPDATE server SET default_host = 'nope'"),
        r#"server 1: column default_host: no host named "nope" for this server"#
    );
}

#[test]
fn default_host_of_another_server_does_not_count() {
    let change = "
        INSERT INTO server (id, uuid, access_log, error_log, chroot, pid_file, default_host, port)
            VALUES (2, 'uuid-2', 'a', 'e', '', 'p', 'other', 1);
        INSERT INTO host (id, server_id, name) VALUES (2, 2, 'other');
        UPDATE server SET default_host = 'other' WHERE id = 1;";
    assert_eq!(
        error_with(change),
        r#"server 1: column default_host: no host named "other" for this server"#
    );
}

#[test]
fn route_to_a_missing_handler_dir_or_proxy() {
    assert_eq!(
        error_with("UPDATE route SET target_id = 9 WHERE id = 1"),
        "route 1: column target_id: no handler with id 9"
    );
    assert_eq!(
        error_with("UPDATE route SET target_id = 5 WHERE id = 2"),
        "route 2: column target_id: no dir with id 5"
    );
    assert_eq!(
        error_with("UPDATE route SET target_id = 7 WHERE id = 3"),
        "route 3: column target_id: no proxy with id 7"
    );
}

#[test]
fn bad_route_pattern() {
    let message = error_with("UPDATE route SET path = '/x/([a-z' WHERE id = 1");
    assert!(
        message.starts_with(r#"route 1: column path: bad pattern "/x/([a-z": "#),
        "{message}"
    );
}

#[test]
fn dir_base_must_end_with_a_slash() {
    assert_eq!(
        error_with("UPDATE directory SET base = 'static'"),
        r#"directory 1: column base: must end with "/""#
    );
}

#[test]
fn dir_base_longer_than_the_limit() {
    assert_eq!(
        error_with(
            "INSERT INTO setting (id, key, value) VALUES (4, 'limits.dir_max_path', '8');
             UPDATE directory SET base = 'static/files/'"
        ),
        "directory 1: column base: is 13 bytes, longer than limits.dir_max_path (8)"
    );
}

#[test]
fn negative_cache_ttl() {
    assert_eq!(
        error_with("UPDATE directory SET cache_ttl = -1"),
        "directory 1: column cache_ttl: -1 is out of range (expected 0 or more)"
    );
}

#[test]
fn ports_out_of_range() {
    assert_eq!(
        error_with("UPDATE server SET port = 70000"),
        "server 1: column port: 70000 is out of range (expected 0 to 65535)"
    );
    assert_eq!(
        error_with("UPDATE proxy SET port = 0"),
        "proxy 1: column port: 0 is out of range (expected 1 to 65535)"
    );
    assert_eq!(
        error_with("UPDATE server SET port = 'http'"),
        r#"server 1: column port: "http" is not an integer"#
    );
    assert_eq!(
        error_with("UPDATE server SET port = NULL"),
        "server 1: column port: is NULL"
    );
}

#[test]
fn setting_that_is_not_a_number() {
    assert_eq!(
        error_with("INSERT INTO setting (id, key, value) VALUES (4, 'limits.buffer_size', 'abc')"),
        r#"setting 4: column value: "abc" is not an integer for limits.buffer_size"#
    );
    assert_eq!(
        error_with(
            "INSERT INTO setting (id, key, value) VALUES (4, 'upload.temp_store_mode', '0999')"
        ),
        r#"setting 4: column value: "0999" is not an octal file mode for upload.temp_store_mode"#
    );
    assert_eq!(
        error_with(
            "INSERT INTO setting (id, key, value) VALUES (4, 'upload.temp_store', '/tmp/upload')"
        ),
        r#"setting 4: column value: "/tmp/upload" is not an mkstemp template for upload.temp_store (it must end in XXXXXX)"#
    );
}

#[test]
fn duplicate_setting_key() {
    assert_eq!(
        error_with("INSERT INTO setting (id, key, value) VALUES (5, 'zeromq.threads', '2')"),
        r#"setting 5: column key: duplicate key "zeromq.threads" (also in setting 3)"#
    );
}

#[test]
fn unknown_setting_key_is_a_warning() {
    let s = load_with(
        "INSERT INTO setting (id, key, value) VALUES (4, 'limits.bufer_size', '8192'),
                                                     (5, 'kennel.handler.conect_wait_ms', '1')",
    )
    .unwrap();
    assert_eq!(
        s.warnings,
        [
            r#"setting 4: unknown key "limits.bufer_size" (ignored)"#,
            r#"setting 5: unknown key "kennel.handler.conect_wait_ms" (ignored)"#,
        ]
    );
    assert_eq!(s.settings.limits_buffer_size, None);
}

#[test]
fn settings_kennel_does_not_act_on_are_warned_about_once() {
    let s = load_with(
        "INSERT INTO setting (id, key, value) VALUES (4, 'superpoll.max_fd', '100000'),
                                                     (5, 'limits.connection_stack_size', '65536')",
    )
    .unwrap();
    for (id, key, why) in [
        (
            4,
            "superpoll.max_fd",
            "the open-file limit is raised to the hard limit at start",
        ),
        (
            5,
            "limits.connection_stack_size",
            "Kennel has no coroutine stacks",
        ),
    ] {
        let warning = format!("setting {id}: {key} is accepted but ignored by Kennel ({why})");
        assert_eq!(
            s.warnings.iter().filter(|w| **w == warning).count(),
            1,
            "{:?}",
            s.warnings
        );
    }
}

#[test]
fn not_a_mongrel2_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    apply_sql(&path, "DROP TABLE route").unwrap();
    assert_eq!(
        config::load(&path, &ServerSelector::Any)
            .unwrap_err()
            .to_string(),
        "not a Mongrel2 config database: table route is missing"
    );
    let empty = dir.path().join("empty.sqlite");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert_eq!(
        config::load(&empty, &ServerSelector::Any)
            .unwrap_err()
            .to_string(),
        "not a Mongrel2 config database: table server is missing"
    );
}

#[test]
fn a_missing_column_without_a_default_names_table_and_column() {
    assert_eq!(
        error_with("ALTER TABLE handler DROP COLUMN send_ident"),
        "not a Mongrel2 config database: table handler has no column send_ident"
    );
    // Also one that is only used to select rows.
    assert_eq!(
        error_with("ALTER TABLE route DROP COLUMN host_id"),
        "not a Mongrel2 config database: table route has no column host_id"
    );
    assert_eq!(
        error_with("ALTER TABLE server DROP COLUMN port"),
        "not a Mongrel2 config database: table server has no column port"
    );
}

/// Older Mongrel2 schemas lack some columns that have a default: each
/// reads as that default, as a NULL does.
#[test]
fn a_missing_column_with_a_default_reads_as_the_default() {
    let s = load_with(
        "ALTER TABLE server DROP COLUMN chroot;
         ALTER TABLE server DROP COLUMN control_port;
         ALTER TABLE server DROP COLUMN name;
         ALTER TABLE server DROP COLUMN bind_addr;
         ALTER TABLE server DROP COLUMN use_ssl;
         ALTER TABLE host DROP COLUMN matching;
         ALTER TABLE handler DROP COLUMN raw_payload;
         ALTER TABLE handler DROP COLUMN protocol;
         ALTER TABLE directory DROP COLUMN cache_ttl;
         ALTER TABLE kennel_handler DROP COLUMN connect_wait_ms;
         INSERT INTO kennel_handler (handler_id) VALUES (1);
         DROP TABLE filter;
         DROP TABLE xrequest;",
    )
    .unwrap();
    assert_eq!(s.server.chroot, "/var/www", "the column's DEFAULT");
    assert_eq!(s.server.control_port, "");
    assert_eq!(s.control_port(), "ipc://run/control");
    assert_eq!(s.server.name, "");
    assert_eq!(s.server.bind_addr, "0.0.0.0");
    assert!(!s.server.use_ssl);
    assert_eq!(s.hosts[0].matching, "main", "matching defaults to the name");
    assert_eq!(s.handlers[0].protocol, Protocol::Json);
    assert!(!s.handlers[0].raw_payload);
    assert_eq!(s.handlers[0].connect_wait_ms, 5000, "the setting");
    assert_eq!(s.dirs[0].cache_ttl, 0);
    assert!(s.filters.is_empty() && s.xrequests.is_empty());
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // `kennel servers` reads the same way.
    let (_dir, path) = site_with("ALTER TABLE server DROP COLUMN control_port");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let servers = config::list_servers(&conn).unwrap();
    assert_eq!(servers[0].control_port, "");
}

#[test]
fn null_in_a_required_column() {
    assert_eq!(
        error_with("UPDATE handler SET send_spec = NULL"),
        "handler 1: column send_spec: is NULL"
    );
    assert_eq!(
        error_with("UPDATE handler SET recv_spec = ''"),
        "handler 1: column recv_spec: is empty"
    );
    assert_eq!(
        error_with("UPDATE route SET target_type = NULL WHERE id = 2"),
        "route 2: column target_type: is NULL"
    );
}

#[test]
fn null_in_a_column_with_a_default_reads_as_the_default() {
    let s = load_with(
        "UPDATE server SET bind_addr = NULL, use_ssl = NULL, name = NULL, control_port = NULL;
         UPDATE host SET matching = NULL;
         UPDATE handler SET raw_payload = NULL, protocol = NULL;
         UPDATE directory SET cache_ttl = NULL;",
    )
    .unwrap();
    assert_eq!(s.server.bind_addr, "0.0.0.0");
    assert!(!s.server.use_ssl);
    assert_eq!(s.server.name, "");
    assert_eq!(s.hosts[0].matching, "main", "matching defaults to the name");
    assert_eq!(s.handlers[0].protocol, Protocol::Json);
    assert!(!s.handlers[0].raw_payload);
    assert_eq!(s.dirs[0].cache_ttl, 0);
}

#[test]
fn bad_mimetype_rows() {
    assert_eq!(
        error_with(
            "INSERT INTO mimetype (id, extension, mimetype) VALUES (9000, 'txt2', 'text/plain')"
        ),
        r#"mimetype 9000: column extension: "txt2" must start with ".""#
    );
    assert_eq!(
        error_with(
            "INSERT INTO mimetype (id, extension, mimetype) VALUES (9000, '.html', 'text/x')"
        ),
        r#"mimetype 9000: column extension: duplicate extension ".html" (also in mimetype 542)"#
    );
    assert_eq!(
        error_with("INSERT INTO mimetype (id, extension, mimetype) VALUES (9000, '.new', '')"),
        "mimetype 9000: column mimetype: is empty"
    );
}

#[test]
fn custom_mimetype_and_case_variant_warning() {
    let s = load_with(
        "INSERT INTO mimetype (id, extension, mimetype) VALUES
             (9000, '.kennel', 'application/x-kennel'),
             (9001, '.HTML', 'text/x-shouting')",
    )
    .unwrap();
    assert_eq!(
        s.mimetypes.lookup("/a/b.KENNEL"),
        Some("application/x-kennel")
    );
    assert_eq!(s.mimetypes.lookup("/a/b.HTML"), Some("text/html"));
    assert_eq!(
        s.warnings,
        [
            r#"mimetype 9001: extension ".HTML" differs only in case from an earlier row, which wins"#
        ]
    );
}

#[test]
fn protocol_other_than_json_or_tnetstring_warns() {
    let s = load_with("UPDATE handler SET protocol = 'msgpack', raw_payload = 2").unwrap();
    assert_eq!(s.handlers[0].protocol, Protocol::Json);
    assert!(!s.handlers[0].raw_payload);
    assert_eq!(
        s.warnings,
        [
            "handler 1: column raw_payload: 2 is neither 0 nor 1; read as 0, as Mongrel2 does",
            r#"handler 1: column protocol: unknown protocol "msgpack"; using json, as Mongrel2 does"#,
        ]
    );
}

#[test]
fn handlers_are_deduplicated_by_send_and_recv_spec() {
    let s = load_with(
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
             VALUES (2, 'tcp://127.0.0.1:9999', 'ident-2', 'tcp://127.0.0.1:9998', ''),
                    (3, 'tcp://127.0.0.1:7777', 'ident-1', 'tcp://127.0.0.1:7778', '');
         INSERT INTO route (id, path, host_id, target_id, target_type) VALUES
             (4, '/two/', 1, 2, 'handler'),
             (5, '/three/', 1, 3, 'handler');",
    )
    .unwrap();
    assert_eq!(s.handlers.len(), 2);
    assert_eq!(s.handlers[0].row_ids, [1, 2]);
    assert_eq!(s.handlers[0].send_ident, "ident-1", "the first row wins");
    assert_eq!(s.handlers[1].row_ids, [3]);
    let targets: Vec<Target> = s.hosts[0].routes.iter().map(|(_, t)| *t).collect();
    assert_eq!(targets[3], Target::Handler(0));
    assert_eq!(targets[4], Target::Handler(1));
    assert_eq!(
        s.warnings,
        ["handler 2: same send_spec and recv_spec as handler 1, whose other columns are used, as Mongrel2 does"]
    );
}

/// A second handler (row 2, routed at `/two/`) with these specs.
fn second_handler(send: &str, recv: &str) -> String {
    format!(
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
             VALUES (2, '{send}', 'ident-2', '{recv}', '');
         INSERT INTO route (id, path, host_id, target_id, target_type)
             VALUES (4, '/two/', 1, 2, 'handler');"
    )
}

/// The message for an endpoint bound twice.
fn bound_twice(id: i64, column: &str, spec: &str, other: &str) -> String {
    format!(
        "handler {id}: column {column}: \"{spec}\" is also the {other}; each endpoint can be \
         bound only once, so the server could not start (handler rows share one socket \
         pair only when both their send_spec and recv_spec are the same)"
    )
}

#[test]
fn handlers_sharing_one_spec_but_not_the_other_cannot_both_bind() {
    // Same send_spec, different recv_spec.
    assert_eq!(
        error_with(&second_handler(
            "tcp://127.0.0.1:9999",
            "tcp://127.0.0.1:7777"
        )),
        bound_twice(
            2,
            "send_spec",
            "tcp://127.0.0.1:9999",
            "send_spec of handler 1"
        )
    );
    // Same recv_spec, different send_spec.
    assert_eq!(
        error_with(&second_handler(
            "tcp://127.0.0.1:7777",
            "tcp://127.0.0.1:9998"
        )),
        bound_twice(
            2,
            "recv_spec",
            "tcp://127.0.0.1:9998",
            "recv_spec of handler 1"
        )
    );
    // One handler's send_spec is another's recv_spec.
    assert_eq!(
        error_with(&second_handler(
            "tcp://127.0.0.1:9998",
            "tcp://127.0.0.1:7777"
        )),
        bound_twice(
            2,
            "send_spec",
            "tcp://127.0.0.1:9998",
            "recv_spec of handler 1"
        )
    );
    // Or its own.
    assert_eq!(
        error_with("UPDATE handler SET recv_spec = send_spec WHERE id = 1"),
        bound_twice(
            1,
            "recv_spec",
            "tcp://127.0.0.1:9999",
            "send_spec of this handler"
        )
    );
    // A handler no route uses binds nothing, so it clashes with nothing.
    let s = load_with(
        "INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident)
             VALUES (2, 'tcp://127.0.0.1:9999', 'ident-2', 'tcp://127.0.0.1:7777', '')",
    )
    .unwrap();
    assert_eq!(s.handlers.len(), 1);
}

#[test]
fn use_ssl_is_read_as_mongrel2_does() {
    // Any non-zero value is on; the certificate files are read when TLS
    // is set up (tests/tls.rs), not by the config loader.
    assert!(
        load_with("UPDATE server SET use_ssl = 1")
            .unwrap()
            .server
            .use_ssl
    );
    assert!(
        load_with("UPDATE server SET use_ssl = 2")
            .unwrap()
            .server
            .use_ssl
    );
    assert!(
        !load_with("UPDATE server SET use_ssl = 0")
            .unwrap()
            .server
            .use_ssl
    );
}

#[test]
fn settings_out_of_their_range() {
    let setting = |key: &str, value: &str| {
        error_with(&format!(
            "INSERT INTO setting (id, key, value) VALUES (4, '{key}', '{value}')"
        ))
    };
    assert_eq!(
        setting("kennel.http.request_timeout_ms", "18446744073709551615"),
        "setting 4: column value: \"18446744073709551615\" is out of range for \
         kennel.http.request_timeout_ms (expected 1 to 31536000000)"
    );
    assert_eq!(
        setting("kennel.max_connections", "0"),
        "setting 4: column value: \"0\" is out of range for kennel.max_connections \
         (expected 1 to 100000000)"
    );
    assert_eq!(
        setting("kennel.max_connections", "2305843009213693952"),
        "setting 4: column value: \"2305843009213693952\" is out of range for \
         kennel.max_connections (expected 1 to 100000000)"
    );
    assert_eq!(
        setting("limits.min_ping", "31536001"),
        "setting 4: column value: \"31536001\" is out of range for limits.min_ping (expected 0 to 31536000)"
    );
    assert_eq!(
        setting("limits.buffer_size", "100"),
        "setting 4: column value: \"100\" is out of range for limits.buffer_size \
         (expected 256 to 16777216)"
    );
}

#[test]
fn kennel_handler_overrides_and_validation() {
    let (_dir, path) = site_with(
        "INSERT INTO setting (id, key, value) VALUES (4, 'kennel.handler.connect_wait_ms', '750');
         INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (1, NULL);",
    );
    // kennel_handler.handler_id REFERENCES handler(id): Kennel's SQLite
    // enforces it, so an orphan row can only come from a tool that does not
    // (the sqlite3 shell by default).
    let orphan = "INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (8, 20)";
    let err = apply_sql(&path, orphan).unwrap_err().to_string();
    assert!(err.ends_with("FOREIGN KEY constraint failed"), "{err}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA foreign_keys = OFF; {orphan}"))
        .unwrap();
    drop(conn);
    let s = config::load(&path, &ServerSelector::Any).unwrap();
    assert_eq!(s.handlers[0].connect_wait_ms, 750, "NULL = the setting");
    assert_eq!(
        s.warnings,
        ["kennel_handler 8: no handler with id 8 (row ignored)"]
    );
    let s = load_with("INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (1, 0)")
        .unwrap();
    assert_eq!(s.handlers[0].connect_wait_ms, 0);
    assert_eq!(
        error_with("INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (1, -5)"),
        "kennel_handler 1: column connect_wait_ms: -5 is out of range (expected 0 to 31536000000)"
    );
    // At most a year, like the setting: no deadline can overflow.
    assert_eq!(
        error_with(
            "INSERT INTO kennel_handler (handler_id, connect_wait_ms) VALUES (1, 31536000001)"
        ),
        "kennel_handler 1: column connect_wait_ms: 31536000001 is out of range (expected 0 to 31536000000)"
    );
}

#[test]
fn host_name_longer_than_the_limit() {
    assert_eq!(
        error_with(
            "INSERT INTO setting (id, key, value) VALUES (4, 'limits.host_name', '5');
             UPDATE host SET matching = 'example.com'"
        ),
        "host 1: column matching: is 11 bytes, longer than limits.host_name (5)"
    );
}

#[test]
fn duplicate_uuid_is_ambiguous() {
    let message = error_with(
        "INSERT INTO server (id, uuid, access_log, error_log, chroot, pid_file, default_host, port)
             VALUES (2, 'uuid-1', 'a', 'e', '', 'p', 'main', 1)",
    );
    assert_eq!(
        message,
        r#"2 servers have uuid "uuid-1" (server ids 1, 2); the selection is ambiguous"#
    );
}

#[test]
fn host_without_routes_warns() {
    let s = load_with("INSERT INTO host (id, server_id, name) VALUES (2, 1, 'empty')").unwrap();
    assert_eq!(s.warnings, ["host 2: no routes"]);
    assert_eq!(s.hosts[1].matching, "empty");
}
