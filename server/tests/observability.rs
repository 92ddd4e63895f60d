//! What operators see: the access log with the status each client got
//! (Mongrel2's lines and JSON lines), the rate-limited warning of a handler
//! outage, and the admin listener's `/live`, `/ready` and `/metrics`
//! (parsed with a Prometheus text-format parser, as a scraper reads it),
//! on a real `kennel serve` process.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::process::{free_port, get, read_response, wait_until, Kennel};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// `GET path` on the admin listener: status and body.
fn admin(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    (status, body)
}

fn scrape(port: u16) -> prometheus_parse::Scrape {
    let (status, body) = admin(port, "/metrics");
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

/// The value of sample `name` whose labels include all of `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

fn access_log(k: &Kennel, needle: &str) -> String {
    let path = k.root().join("access.log");
    wait_until(needle, || {
        std::fs::read_to_string(&path).is_ok_and(|l| l.contains(needle))
    });
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn the_access_log_has_the_status_each_client_got() {
    let k = Kennel::start_with(
        500,
        "INSERT INTO setting (key, value) VALUES ('kennel.handler.connect_wait_ms', '100');",
    );
    // No handler process: the client gets a 503, and so does the log.
    let response = get(k.port, "/app/nobody");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    let log = access_log(&k, "11:/app/nobody,");
    assert!(log.contains("11:/app/nobody,8:HTTP/1.0,3:503#"), "{log}");
    // The outage is warned about, naming the handler, once.
    for _ in 0..5 {
        assert!(get(k.port, "/app/nobody").starts_with("HTTP/1.1 503"));
    }
    let warnings = k.log_count("handler 1 is not taking requests");
    assert_eq!(warnings, 1, "{}", k.log());
    // A 404 of the Dir, and a handler's own 201 with its size.
    get(k.port, "/missing.html");
    let handler = k.handler(1);
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /app/made HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let req = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    handler.reply_http(&req, 201, &[], b"created").unwrap();
    let response = read_response(&mut s);
    let log = access_log(&k, "9:/app/made,");
    assert!(log.contains("13:/missing.html,8:HTTP/1.0,3:404#"), "{log}");
    let size = response.len();
    assert!(
        log.contains(&format!(
            "9:/app/made,8:HTTP/1.1,3:201#{}:{size}#",
            size.to_string().len()
        )),
        "{log}\nresponse of {size} bytes: {response:?}"
    );
}

#[test]
fn json_access_lines_carry_route_and_duration() {
    let k = Kennel::start_with(
        500,
        "INSERT INTO setting (key, value) VALUES ('kennel.access_log.format', 'json');",
    );
    assert!(get(k.port, "/").ends_with("first site\n"));
    let log = access_log(&k, "\"path\":\"/\"");
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["route"], "/");
    assert_eq!(line["remote_addr"], "127.0.0.1");
    assert_eq!(line["size"], "first site\n".len());
    assert!(line["duration_us"].is_u64());
}

#[test]
fn metrics_live_and_ready_on_the_admin_listener() {
    let admin_port = free_port();
    let mut k = Kennel::start_with(
        20_000,
        &format!(
            "INSERT INTO setting (key, value) VALUES ('kennel.admin.listen', '127.0.0.1:{admin_port}'),
                                                      ('kennel.handler.connect_wait_ms', '100');"
        ),
    );
    wait_until("the admin listener", || {
        TcpStream::connect(("127.0.0.1", admin_port)).is_ok()
    });
    assert_eq!(admin(admin_port, "/live"), (200, "live\n".into()));
    assert_eq!(admin(admin_port, "/ready"), (200, "ready\n".into()));
    assert_eq!(admin(admin_port, "/nope").0, 404);

    for _ in 0..3 {
        assert!(get(k.port, "/").ends_with("first site\n"));
    }
    get(k.port, "/app/nobody");
    let m = scrape(admin_port);
    let labels = [("host", "localhost"), ("route", "/"), ("status", "200")];
    assert_eq!(value(&m, "kennel_requests_total", &labels), Some(3.0));
    let labels = [("route", "/app/"), ("status", "503")];
    assert_eq!(value(&m, "kennel_requests_total", &labels), Some(1.0));
    assert_eq!(
        value(&m, "kennel_handler_unavailable_total", &[("handler", "1")]),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "kennel_handler_unavailable_total", &[]),
        Some(1.0)
    );
    assert!(value(&m, "kennel_bytes_written_total", &[]).unwrap() > 0.0);
    assert_eq!(value(&m, "kennel_reloads_total", &[]), Some(0.0));
    let histogram = m
        .samples
        .iter()
        .find(|s| {
            s.metric == "kennel_request_duration_seconds" && s.labels.get("route") == Some("/")
        })
        .expect("the / route's latency histogram");
    match &histogram.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 3.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }

    // A handler answers; reload counted.
    let handler = k.handler(1);
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /app/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let req = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    handler.reply_http(&req, 200, &[], b"hi").unwrap();
    read_response(&mut s);
    k.reload("reloaded the config");
    let m = scrape(admin_port);
    assert_eq!(value(&m, "kennel_reloads_total", &[]), Some(1.0));
    assert_eq!(
        value(&m, "kennel_handler_answered_total", &[("handler", "1")]),
        Some(1.0)
    );
    assert_eq!(value(&m, "kennel_connections_open", &[]), Some(1.0));

    // While it drains (a handler request held open), /ready says no.
    s.write_all(b"GET /app/poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let _held = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    kill(Pid::from_raw(k.child.id() as i32), Signal::SIGTERM).unwrap();
    wait_until("not ready", || admin(admin_port, "/ready").0 == 503);
    assert_eq!(admin(admin_port, "/live").0, 200);
    let _ = k.child.kill();
}
