//! `docs/configuration.md` is true: its "first site" SQL loads, passes
//! `kennel check` and means what the page says, and its settings table
//! matches the loader.

mod manual;

use std::path::Path;

use kennel::config::{self, apply_sql, Protocol, ServerSelector, Target};

fn configuration_md() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"))
        .unwrap()
}

fn first_site_sql() -> String {
    manual::block("configuration/first-site").text
}

#[test]
fn first_site_from_the_docs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.sqlite");
    apply_sql(&path, &first_site_sql()).unwrap();
    let s = config::load(&path, &ServerSelector::UuidOrName("main".into())).unwrap();
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.server.uuid, "2f62bd5b-9e59-49cd-993c-3b6013c28f05");
    assert_eq!(s.server.port, 6767);
    let routes: Vec<(&str, Target)> = s
        .default_host()
        .routes
        .iter()
        .map(|(k, t)| (k, *t))
        .collect();
    assert_eq!(
        routes,
        [
            ("/app/", Target::Handler(0)),
            ("/static/", Target::Dir(0)),
            ("/", Target::Proxy(0)),
        ]
    );
    assert_eq!(s.handlers[0].protocol, Protocol::Json);
    assert_eq!(s.handlers[0].connect_wait_ms, 10000);
    assert_eq!(s.settings.kennel_handler_connect_wait_ms, 3000);
    assert_eq!(s.settings.limits_content_length, 102400);
    assert!(!s.settings.server_daemonize);
    assert_eq!(s.dirs[0].base, "public/");
    assert_eq!(
        (s.proxies[0].addr.as_str(), s.proxies[0].port),
        ("127.0.0.1", 8080)
    );
    assert_eq!(
        s.mimetypes.lookup("/site.webmanifest"),
        Some("application/manifest+json")
    );
}

#[test]
fn first_site_passes_kennel_check() {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("site.sql");
    std::fs::write(&sql, first_site_sql()).unwrap();
    let db = dir.path().join("config.sqlite");
    let load = manual::kennel()
        .args(["load", "--db"])
        .arg(&db)
        .arg(&sql)
        .output()
        .unwrap();
    assert!(load.status.success(), "{load:?}");
    let check = manual::kennel()
        .args(["check", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    assert_eq!(
        String::from_utf8(check.stdout).unwrap(),
        "ok: server main (2f62bd5b-9e59-49cd-993c-3b6013c28f05): 1 hosts, 3 routes, 1 handlers, 1 directories, 1 proxies\n"
    );
}

/// The settings table of `docs/configuration.md` lists every key Kennel
/// knows, once, and its "valid" column is the range the loader checks.
#[test]
fn the_settings_table_lists_every_key_with_its_range() {
    use kennel::config::Settings;
    let doc = configuration_md();
    let table = doc
        .split_once("| key | default | valid | Kennel | effect |")
        .expect("the settings table")
        .1;
    let mut seen = Vec::new();
    for row in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let valid = cells[2];
        for key in cells[0].trim_start_matches("| ").split(", ") {
            let key = key.trim_matches('`');
            let expected = match Settings::range(key) {
                Some((min, max)) => format!("{min} to {max}"),
                None => "any".to_owned(),
            };
            assert!(
                valid == expected || valid.starts_with(&format!("{expected} (")),
                "{key}: the table says {valid:?}, the loader checks {expected:?}"
            );
            seen.push(key.to_owned());
        }
    }
    let mut keys: Vec<String> = Settings::KEYS.iter().map(|k| (*k).to_owned()).collect();
    keys.sort();
    seen.sort();
    assert_eq!(seen, keys);
}
