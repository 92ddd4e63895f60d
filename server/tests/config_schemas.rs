//! One site in the three kinds of config database a Mongrel2 user may
//! have (made by `m2sh load`, from Kennel's `config.sqlite.sql`, and from
//! the `config.sql` of Mongrel2's Python library as Debian ships it):
//! Kennel loads each, and reads the same site from all three.

#[path = "differential/databases.rs"]
mod databases;

use std::process::Command;

use databases::{
    DbKind, DirRow, HandlerRow, HostRows, ProxyRow, ServerRow, SiteRows, TargetRow,
    PYTHON_CONFIG_SQL,
};
use kennel::config::{self, ServerSelector, Snapshot, Target};

/// A site with every target type, two hosts, both protocols and settings.
fn site() -> SiteRows {
    let handler = |name: &str, protocol: &str| HandlerRow {
        send_spec: format!("tcp://127.0.0.1:99{}", if name == "a" { 97 } else { 95 }),
        send_ident: format!("ident-{name}"),
        recv_spec: format!("tcp://127.0.0.1:99{}", if name == "a" { 96 } else { 94 }),
        recv_ident: String::new(),
        protocol: protocol.into(),
    };
    SiteRows {
        server: ServerRow {
            uuid: "8d2b0c6e-schemas".into(),
            name: "schemas".into(),
            access_log: "/logs/access.log".into(),
            error_log: "/logs/error.log".into(),
            chroot: String::new(),
            pid_file: "/run/kennel.pid".into(),
            default_host: "localhost".into(),
            bind_addr: "127.0.0.1".into(),
            port: 6767,
        },
        hosts: vec![
            HostRows {
                name: "localhost".into(),
                matching: "localhost".into(),
                routes: vec![
                    ("/json/".into(), TargetRow::Handler(0)),
                    ("/tns/".into(), TargetRow::Handler(1)),
                    (r"/users/(\d+)$".into(), TargetRow::Handler(0)),
                    ("/static/".into(), TargetRow::Dir(0)),
                    ("/".into(), TargetRow::Proxy(0)),
                ],
            },
            HostRows {
                name: "wildcard".into(),
                matching: "(.+)example.com".into(),
                routes: vec![("/api/".into(), TargetRow::Handler(1))],
            },
        ],
        handlers: vec![handler("a", "json"), handler("b", "tnetstring")],
        dirs: vec![DirRow {
            base: "static/".into(),
            index_file: "index.html".into(),
            default_ctype: "text/plain".into(),
            cache_ttl: 30,
        }],
        proxies: vec![ProxyRow {
            addr: "127.0.0.1".into(),
            port: 8080,
        }],
        settings: vec![
            ("server.daemonize".into(), "0".into()),
            ("limits.content_length".into(), "102400".into()),
            ("kennel.handler.connect_wait_ms".into(), "2500".into()),
        ],
    }
}

/// What a snapshot says about the site, without the ids and list
/// positions that depend on the order rows were inserted in (m2sh inserts
/// routes in its own order).
fn described(s: &Snapshot) -> String {
    let target = |t: Target| match t {
        Target::Handler(i) => {
            let h = &s.handlers[i];
            format!(
                "handler {} {} {} {:?} {:?} raw={} wait={}",
                h.send_spec,
                h.send_ident,
                h.recv_spec,
                h.recv_ident,
                h.protocol,
                h.raw_payload,
                h.connect_wait_ms
            )
        }
        Target::Dir(i) => {
            let d = &s.dirs[i];
            format!(
                "dir {} {} {} ttl={}",
                d.base, d.index_file, d.default_ctype, d.cache_ttl
            )
        }
        Target::Proxy(i) => format!("proxy {}:{}", s.proxies[i].addr, s.proxies[i].port),
    };
    let server = s.server.clone();
    let mut out = format!(
        "server {} {} {} {} {:?} {} {} {}:{} ssl={} control={:?}\n",
        server.uuid,
        server.name,
        server.access_log,
        server.error_log,
        server.chroot,
        server.pid_file,
        server.default_host,
        server.bind_addr,
        server.port,
        server.use_ssl,
        s.control_port(),
    );
    out += &format!("default host {}\n", s.default_host().name);
    for host in &s.hosts {
        out += &format!("host {} matching {}\n", host.name, host.matching);
        let mut routes: Vec<String> = host
            .routes
            .iter()
            .map(|(key, t)| format!("  {key} -> {}", target(*t)))
            .collect();
        routes.sort();
        out += &(routes.join("\n") + "\n");
    }
    out += &format!(
        "{} handlers, {} dirs, {} proxies, {} filters, {} xrequests\n",
        s.handlers.len(),
        s.dirs.len(),
        s.proxies.len(),
        s.filters.len(),
        s.xrequests.len()
    );
    out += &format!("{:?}\nwarnings {:?}\n", s.settings, s.warnings);
    out
}

fn columns(db: &std::path::Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .unwrap();
    stmt.query_map([table], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_same_site_reads_the_same_from_all_three_kinds_of_database() {
    let dir = tempfile::tempdir().unwrap();
    let site = site();
    let mut first: Option<(DbKind, String)> = None;
    for kind in DbKind::ALL {
        let db = kind.make(&site, dir.path());
        let snapshot = config::load(&db, &ServerSelector::Uuid(site.server.uuid.clone()))
            .unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
        let description = described(&snapshot);
        match &first {
            None => first = Some((kind, description)),
            Some((first_kind, expected)) => assert_eq!(
                &description,
                expected,
                "{} and {} read differently",
                kind.name(),
                first_kind.name()
            ),
        }
        // The mimetypes are what each kind of database brings: m2sh and
        // config.sqlite.sql import Mongrel2's 857 defaults, the Python
        // library's schema none.
        let mimetypes = if kind == DbKind::PythonSchema { 0 } else { 857 };
        assert_eq!(snapshot.mimetypes.len(), mimetypes, "{}", kind.name());

        // The real binary agrees.
        let out = Command::new(env!("CARGO_BIN_EXE_kennel"))
            .args(["check", "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kennel check on the {} database: {}",
            kind.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok: server schemas (8d2b0c6e-schemas): 2 hosts, 6 routes, 2 handlers, \
             1 directories, 1 proxies\n",
            "{}",
            kind.name()
        );
    }
    let (_, description) = first.unwrap();
    assert!(
        description.contains(r#"control="ipc://run/control""#),
        "{description}"
    );
}

/// The Python library's schema really is the older one, read from the
/// Debian path (not a copy edited to suit Kennel).
#[test]
fn the_python_schema_lacks_what_kennel_must_default() {
    let text = std::fs::read_to_string(PYTHON_CONFIG_SQL).unwrap_or_else(|e| {
        panic!(
            "cannot read {PYTHON_CONFIG_SQL} ({e}): install the Debian package mongrel2-core \
             (`bash tests/setup.sh` installs everything the tests need)"
        )
    });
    assert!(text.contains("CREATE TABLE server"), "{PYTHON_CONFIG_SQL}");
    let dir = tempfile::tempdir().unwrap();
    let db = DbKind::PythonSchema.make(&site(), dir.path());
    assert!(!columns(&db, "server").is_empty());
    assert!(!columns(&db, "server").contains(&"control_port".to_owned()));
    for table in ["filter", "xrequest", "kennel_handler"] {
        assert!(columns(&db, table).is_empty(), "{table}");
    }
}
