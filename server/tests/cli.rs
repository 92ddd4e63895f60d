//! The real `kennel` binary on real SQLite files: the fixture made by
//! Mongrel2's own `m2sh load`, and databases built with `kennel load`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kennel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(args)
        .output()
        .expect("run kennel")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/mongrel2.sqlite")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn servers_lists_both_fixture_servers() {
    let db = fixture();
    let o = kennel(&["servers", "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "SERVERS:\n------\n\
         main localhost f400bf85-4538-4f7a-8908-67e313d515c2 0.0.0.0:6767\n\
         admin admin.local 0c2ab3d2-0b6b-4d12-9a5c-1a0b38c3d9aa 127.0.0.1:6768\n"
    );
}

#[test]
fn check_needs_a_server_when_there_are_several() {
    let db = fixture();
    let o = kennel(&["check", "--db", db.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).contains("the config database has 2 servers; choose one by uuid or name"),
        "{}",
        stderr(&o)
    );

    let o = kennel(&["check", "--db", db.to_str().unwrap(), "--server", "main"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("warning: ") && out.contains("frobnicate.level"),
        "{out}"
    );
    assert!(
        out.contains("ok: server main (f400bf85-4538-4f7a-8908-67e313d515c2): 3 hosts, 10 routes"),
        "{out}"
    );

    // The admin server has use_ssl = 1, and the fixture no certdir.
    let o = kennel(&[
        "check",
        "--db",
        db.to_str().unwrap(),
        "--server",
        "0c2ab3d2-0b6b-4d12-9a5c-1a0b38c3d9aa",
    ]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).starts_with("kennel: setting certdir: not set, but server 2 has use_ssl = 1"),
        "{}",
        stderr(&o)
    );

    let o = kennel(&["check", "--db", db.to_str().unwrap(), "--server", "nope"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
}

#[test]
fn hosts_and_routes_print_m2sh_style() {
    let db = fixture();
    let db = db.to_str().unwrap();
    let o = kennel(&["hosts", "--db", db, "--server", "main"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "HOSTS in main:\n-----\n\
         1 localhost matching localhost (default)\n\
         2 wildcard matching (.+)example.com\n\
         3 other.test matching other.test\n"
    );
    let o = kennel(&[
        "routes",
        "--db",
        db,
        "--server",
        "main",
        "--host",
        "localhost",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("ROUTES in host localhost, server main\n-----\n"),
        "{out}"
    );
    assert!(out.contains("/users/(\\d+)$ -> handler "), "{out}");
    assert!(out.contains("/static/ -> dir "), "{out}");
    assert!(
        out.contains("/app/ -> proxy ") && out.contains("(127.0.0.1:8080)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2 + 7, "{out}");

    let o = kennel(&["routes", "--db", db, "--server", "main", "--host", "nosuch"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("no host named \"nosuch\""));
}

#[test]
fn route_answers_which_target_serves_a_request() {
    let db = fixture();
    let db = db.to_str().unwrap();
    let route = |host: &str, path: &str| {
        kennel(&[
            "route", "--db", db, "--server", "main", "--host", host, path,
        ])
    };

    let o = route("localhost:6767", "/users/42");
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("host: localhost (id 1, matching localhost, matched)"),
        "{out}"
    );
    assert!(
        out.contains("route: /users/(\\d+)$ (prefix \"/users/\")"),
        "{out}"
    );
    assert!(out.contains("target: handler "), "{out}");

    // Not a number: the pattern fails, so the longer prefix does not answer.
    let out = stdout(&route("localhost", "/users/abc"));
    assert!(!out.contains("/users/"), "{out}");

    let out = stdout(&route("WWW.EXAMPLE.COM", "/api/x"));
    assert!(out.contains("host: wildcard"), "{out}");
    assert!(out.contains("route: /api/"), "{out}");

    let out = stdout(&route("unknown.test", "/static/a.css"));
    assert!(
        out.contains("host: localhost (id 1, matching localhost, default host)"),
        "{out}"
    );
    assert!(
        out.contains("route: /static/ ") && out.contains("target: dir "),
        "{out}"
    );

    let o = route("other.test", "nothing-starts-like-this");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no route for \"nothing-starts-like-this\" on host other.test"));
}

#[test]
fn load_creates_the_schema_and_applies_the_example_site() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("site.sqlite");
    let db = db.to_str().unwrap();
    let sql = repo().join("examples/site/config.sql");
    let o = kennel(&["load", "--db", db, sql.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Loading again is fine: the schema is only created when missing.
    let o = kennel(&["load", "--db", db, sql.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = kennel(&["check", "--db", db]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("ok: server example"), "{}", stdout(&o));
    let o = kennel(&["route", "--db", db, "--host", "localhost", "/hello"]);
    assert!(stdout(&o).contains("route: /hello"), "{}", stdout(&o));
}

#[test]
fn load_reports_sql_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.sqlite");
    let sql = dir.path().join("bad.sql");
    std::fs::write(
        &sql,
        "INSERT INTO host (id, name) VALUES (1, 'a');\nINSERT INTO nosuchtable VALUES (1);\n",
    )
    .unwrap();
    let o = kennel(&["load", "--db", db.to_str().unwrap(), sql.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(64));
    assert!(stderr(&o).contains("nosuchtable"), "{}", stderr(&o));
    let conn = rusqlite::Connection::open(&db).unwrap();
    let hosts: i64 = conn
        .query_row("SELECT count(*) FROM host", [], |r| r.get(0))
        .unwrap_or(0);
    assert_eq!(hosts, 0, "a failed load must not leave rows behind");
}

#[test]
fn check_names_table_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.sqlite");
    let db = db.to_str().unwrap();
    let sql = repo().join("examples/site/config.sql");
    assert!(kennel(&["load", "--db", db, sql.to_str().unwrap()])
        .status
        .success());
    let bad = dir.path().join("bad.sql");
    std::fs::write(
        &bad,
        "UPDATE route SET target_type = 'hander' WHERE path = '/hello';",
    )
    .unwrap();
    assert!(kennel(&["load", "--db", db, bad.to_str().unwrap()])
        .status
        .success());
    let o = kennel(&["check", "--db", db]);
    assert_eq!(o.status.code(), Some(64));
    let err = stderr(&o);
    assert!(err.starts_with("kennel: route "), "{err}");
    assert!(
        err.contains("column target_type") && err.contains("\"hander\""),
        "{err}"
    );
}

#[test]
fn missing_database_and_usage_errors() {
    let o = kennel(&["check", "--db", "/nonexistent/k.sqlite"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(
        stderr(&o).contains("/nonexistent/k.sqlite"),
        "{}",
        stderr(&o)
    );
    let o = kennel(&["check"]);
    assert_eq!(o.status.code(), Some(2), "clap's usage error");
    let o = kennel(&["--help"]);
    assert!(stdout(&o).contains("Examples:"));
}

#[test]
fn version_and_uuid() {
    let o = kennel(&["version"]);
    assert_eq!(
        stdout(&o),
        format!("kennel {}\n", env!("CARGO_PKG_VERSION"))
    );
    let a = stdout(&kennel(&["uuid"]));
    let b = stdout(&kennel(&["uuid"]));
    assert_ne!(a, b);
    let parsed = uuid::Uuid::parse_str(a.trim()).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
}

/// A valid one-server site on a free port with two handler routes on
/// `ipc://` sockets in `dir`; `change` is applied after it.
fn site_db(dir: &Path, change: &str) -> PathBuf {
    let d = dir.display();
    let sql = format!(
        "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
           VALUES (1, 'same-rules', 'same', '', '', '', '', 'localhost', '127.0.0.1', 0);
         INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
         INSERT INTO handler (id, send_spec, send_ident, recv_spec, recv_ident) VALUES
           (1, 'ipc://{d}/a-send', 'a', 'ipc://{d}/a-recv', ''),
           (2, 'ipc://{d}/b-send', 'b', 'ipc://{d}/b-recv', '');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES
           ('/a/', 1, 1, 'handler'), ('/b/', 1, 2, 'handler');
         INSERT INTO setting (key, value) VALUES ('kennel.shutdown_grace_ms', '0');
         {change}"
    );
    let db = dir.join("config.sqlite");
    kennel::config::apply_sql(&db, &sql).unwrap();
    db
}

/// `kennel serve` on `db`: its exit code and standard error, or `None` if
/// it was still serving after a while (then it is killed).
fn serve_briefly(db: &Path) -> Option<(Option<i32>, String)> {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kennel"))
        .args(["serve", "--db"])
        .arg(db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kennel serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status.code(), err));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// `kennel check` and `kennel serve` apply the same rules: each config
/// that cannot be served is refused by both, with exit code 64 and the
/// same message naming table, row and column, before anything is bound.
#[test]
fn check_and_serve_refuse_the_same_configs_with_the_same_error() {
    // `{d}` stands for the site's directory.
    let bound_twice = |column: &str| {
        format!(
            "handler 2: column {column}: \"ipc://{{d}}/a-{}\" is also the {column} of handler 1; \
             each endpoint can be bound only once, so the server could not start (handler \
             rows share one socket pair only when both their send_spec and recv_spec are the \
             same)",
            &column[..4]
        )
    };
    let out_of_range = |value: &str, key: &str, range: &str| {
        format!("setting 2: column value: \"{value}\" is out of range for {key} (expected {range})")
    };
    let setting = |key: &str, value: &str| {
        format!("INSERT INTO setting (id, key, value) VALUES (2, '{key}', '{value}')")
    };
    let timeout = "kennel.http.request_timeout_ms";
    let cases = [
        (
            "UPDATE handler SET send_spec = (SELECT send_spec FROM handler WHERE id = 1) WHERE id = 2".to_owned(),
            bound_twice("send_spec"),
        ),
        (
            "UPDATE handler SET recv_spec = (SELECT recv_spec FROM handler WHERE id = 1) WHERE id = 2".to_owned(),
            bound_twice("recv_spec"),
        ),
        (
            "UPDATE server SET use_ssl = 1".to_owned(),
            "setting certdir: not set, but server 1 has use_ssl = 1; set it to the directory \
             holding same-rules.crt and same-rules.key"
                .to_owned(),
        ),
        (
            setting(timeout, "18446744073709551615"),
            out_of_range("18446744073709551615", timeout, "1 to 31536000000"),
        ),
        (
            setting("kennel.max_connections", "0"),
            out_of_range("0", "kennel.max_connections", "1 to 100000000"),
        ),
        (
            setting("kennel.max_connections", "2305843009213693952"),
            out_of_range("2305843009213693952", "kennel.max_connections", "1 to 100000000"),
        ),
    ];
    for (change, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let db = site_db(dir.path(), &change);
        let expected = format!(
            "kennel: {}\n",
            expected.replace("{d}", &dir.path().display().to_string())
        );
        let check = kennel(&["check", "--db", db.to_str().unwrap()]);
        assert_eq!(
            (check.status.code(), stderr(&check)),
            (Some(64), expected.clone()),
            "kennel check after {change:?}\nstdout: {}",
            stdout(&check)
        );
        let served = serve_briefly(&db);
        assert_eq!(
            served,
            Some((Some(64), expected)),
            "kennel serve after {change:?} (None: it kept serving)"
        );
    }
    // The same site without a change is fine for both.
    let dir = tempfile::tempdir().unwrap();
    let db = site_db(dir.path(), "");
    let check = kennel(&["check", "--db", db.to_str().unwrap()]);
    assert!(check.status.success(), "{}", stderr(&check));
    assert_eq!(serve_briefly(&db), None, "a valid site keeps serving");
}
