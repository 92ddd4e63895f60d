//! Hot reload of a real `kennel serve` process by SIGHUP: routes added by
//! SQL are served after it, a request in flight across it gets its reply,
//! a kept-alive connection goes on, a handler whose sockets did not change
//! keeps its link, a bad config is refused with the precise error while
//! the old one serves on, a new port is bound while the old one stops
//! accepting, and the access log is reopened. And the drain on SIGTERM:
//! it says what it waits for, lets a handler finish, and a second signal
//! exits at once.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Child;
use std::time::{Duration, Instant};

use common::process::{free_port, get, read_response, wait_until, Kennel};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const RELOADED: &str = "reloaded the config";
const REFUSED: &str = "reload refused; still serving the previous config";

#[test]
fn a_route_added_by_sql_is_served_after_sighup_and_nothing_in_flight_is_lost() {
    let k = Kennel::start();
    let handler = k.handler(1);
    assert!(get(k.port, "/").ends_with("first site\n"));

    // A kept-alive connection and a request held by the handler, both
    // across the reload.
    let mut kept = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    kept.write_all(b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut kept).ends_with("first site\n"));
    let mut waiting = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting
        .write_all(b"GET /app/slow HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let held = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(held.path_str(), "/app/slow");

    // A route to a file, by SQL; the running server has not seen it.
    k.sql(
        "INSERT INTO directory (id, base, index_file, default_ctype) VALUES (2, '{}/public/', 'new.txt', 'text/plain');
         INSERT INTO route (id, path, host_id, target_id, target_type) VALUES (3, '/fresh/', 1, 2, 'dir');"
            .replace("{}", &k.root().display().to_string())
            .as_str(),
    );
    let before = get(k.port, "/fresh/");
    assert!(
        before.contains(" 404 "),
        "not routed before the reload: {before}"
    );
    k.reload(RELOADED);
    let fresh = get(k.port, "/fresh/");
    assert!(fresh.ends_with("a new route\n"), "{fresh}");

    // The held request's reply, sent after the reload on the same link.
    handler
        .reply_http(&held, 200, &[], b"answered after the reload")
        .unwrap();
    assert!(read_response(&mut waiting).ends_with("answered after the reload"));
    // The kept-alive connection serves its next request on the new config.
    kept.write_all(b"GET /fresh/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut kept).ends_with("a new route\n"));

    // The unchanged handler's link was kept: the same handler socket gets
    // the next request with no reconnect.
    let mut again = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    again
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    again
        .write_all(b"GET /app/next HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let next = handler
        .recv_timeout(Duration::from_secs(5))
        .unwrap()
        .unwrap();
    assert_eq!(next.path_str(), "/app/next");
    handler.reply_http(&next, 200, &[], b"same link").unwrap();
    assert!(read_response(&mut again).ends_with("same link"));
}

#[test]
fn a_bad_config_is_refused_with_the_precise_error_and_the_old_one_serves_on() {
    let k = Kennel::start();
    k.sql("UPDATE route SET target_type = 'hander' WHERE id = 2");
    k.reload(REFUSED);
    let log = k.log();
    assert!(
        log.contains("route 2: column target_type: unknown target type \"hander\""),
        "{log}"
    );
    assert!(get(k.port, "/").ends_with("first site\n"));
    // Fixed, it loads.
    k.sql("UPDATE route SET target_type = 'handler' WHERE id = 2");
    k.reload(RELOADED);
    // A TLS switch without certificates is refused too, naming the setting.
    k.sql("UPDATE server SET use_ssl = 1");
    k.reload(REFUSED);
    assert!(
        k.log()
            .contains("setting certdir: not set, but server 1 has use_ssl = 1"),
        "{}",
        k.log()
    );
    assert!(
        get(k.port, "/").ends_with("first site\n"),
        "still plain HTTP"
    );
}

#[test]
fn a_new_port_is_bound_and_the_old_one_stops_accepting() {
    let k = Kennel::start();
    let mut kept = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let new_port = free_port();
    k.sql(&format!("UPDATE server SET port = {new_port}"));
    k.reload(RELOADED);
    wait_until("the new port", || {
        TcpStream::connect(("127.0.0.1", new_port)).is_ok()
    });
    assert!(get(new_port, "/").ends_with("first site\n"));
    wait_until("the old port closed", || {
        TcpStream::connect(("127.0.0.1", k.port)).is_err()
    });
    // A connection accepted on the old port is still served.
    kept.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut kept).ends_with("first site\n"));
}

#[test]
fn reload_reopens_the_access_log_and_moves_handlers() {
    let k = Kennel::start();
    assert!(get(k.port, "/").ends_with("first site\n"));
    let log = k.root().join("access.log");
    wait_until("the first line", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("1:/,"))
    });
    let rotated = k.root().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();

    // And the handler moves to new sockets; the old link drains.
    let old = k.handler(1);
    let mut waiting = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting
        .write_all(b"GET /app/old HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let held = old.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let d = k.root().display().to_string();
    k.sql(&format!(
        "UPDATE handler SET send_spec = 'ipc://{d}/h2-send', recv_spec = 'ipc://{d}/h2-recv' WHERE id = 1"
    ));
    k.reload(RELOADED);
    assert!(get(k.port, "/index.html").ends_with("first site\n"));
    wait_until("a new access log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("11:/index.html,"))
    });
    assert!(!std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("/index.html"));

    // The request the old link gave out is still answered through it.
    old.reply_http(&held, 200, &[], b"old link").unwrap();
    assert!(read_response(&mut waiting).ends_with("old link"));
    // New requests go to the new sockets.
    let new = k.handler(2);
    let mut s = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /app/new HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let req = new.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(req.path_str(), "/app/new");
    new.reply_http(&req, 200, &[], b"new link").unwrap();
    assert!(read_response(&mut s).ends_with("new link"));
    drop(waiting);
    drop(s);
    // Once nothing uses it, the old link is closed.
    wait_until("the old link closed", || {
        k.log()
            .contains("closing the link of a handler the config no longer names")
    });
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "kennel did not exit in {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_drain_lets_a_handler_finish_and_says_what_it_waits_for() {
    let mut k = Kennel::start_with_grace(20_000);
    let handler = k.handler(1);
    let mut waiting = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    waiting
        .write_all(b"GET /app/poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let held = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    kill(Pid::from_raw(k.child.id() as i32), Signal::SIGTERM).unwrap();
    wait_until("the drain report", || {
        k.log()
            .contains("draining: waiting for 1 connection(s) to finish (1 talking to handlers")
    });
    assert!(k.log().contains("a second SIGINT or SIGTERM exits at once"));
    wait_until("the port closed", || {
        TcpStream::connect(("127.0.0.1", k.port)).is_err()
    });
    // The handler answers within the grace: the client gets it, and the
    // server stops at once after, long before the 20 s grace.
    let started = Instant::now();
    handler.reply_http(&held, 200, &[], b"last words").unwrap();
    handler.reply(&held, b"").unwrap();
    assert!(read_response(&mut waiting).ends_with("last words"));
    let status = wait_exit(&mut k.child, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_second_signal_ends_a_drain_at_once() {
    let mut k = Kennel::start_with_grace(60_000);
    let handler = k.handler(1);
    let mut waiting = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    waiting
        .write_all(b"GET /app/poll HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let _held = handler
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    let pid = Pid::from_raw(k.child.id() as i32);
    kill(pid, Signal::SIGINT).unwrap();
    wait_until("the drain report", || {
        k.log().contains("draining: waiting for 1")
    });
    kill(pid, Signal::SIGINT).unwrap();
    let status = wait_exit(&mut k.child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    wait_until("the message", || {
        k.log().contains("kennel: second signal, exiting now")
    });
}
