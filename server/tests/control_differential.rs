//! The control port differential: the same commands to the real Mongrel2
//! 1.12 and to a real `kennel` process, one after the other on the same
//! site (a database made by `m2sh load`, both servers in its directory,
//! so both bind `ipc://run/control` at the same socket file), and the
//! replies compared byte for byte. Only what must differ is normalised:
//! the `time` value, connection ids and descriptors (each server's own),
//! the seconds-ago columns (Mongrel2's clock ticks every 10 s). The rows
//! of `status what=tasks` differ by design (Kennel has no libtask tasks;
//! `docs/control-port.md`), so only their headers are compared.
//!
//! The clients too: Mongrel2's own `m2sh control` drives both servers,
//! and `kennel control` must print exactly what m2sh prints, against
//! either server.
//!
//! Without `mongrel2` or `m2sh` (Debian's `mongrel2-core`) the test fails
//! with a message saying what to install; it is never skipped.

mod common;
mod differential;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use differential::control::{
    endpoint, kennel_control, m2sh_control, net_rows, request, text, Arg, KennelProcess, Req,
};
use differential::databases::DbKind;
use differential::{find_mongrel2, frame_id, show, Capture, Mongrel2, Route, Site};

/// Requests whose replies depend on nothing but the config: every one
/// must be the same bytes from both servers.
const FIXED: &[&[u8]] = &[
    b"10:4:help,0:}]",
    b"10:4:uuid,0:}]",
    b"10:4:info,0:}]",
    b"26:6:status,13:4:what,3:net,}]",
    b"26:6:status,13:4:what,3:foo,}]",
    b"29:6:status,16:4:what,6:tasks ,}]",
    b"27:6:status,14:4:what,4:net\0,}]",
    b"12:6:status,0:}]",
    b"24:6:status,11:4:what,1:1#}]",
    b"23:6:status,10:4:what,0:~}]",
    b"27:6:status,14:4:what,4:1:1#]}]",
    b"38:6:status,25:4:what,3:net,5:extra,1:1#}]",
    b"21:4:kill,10:2:id,2:-1#}]",
    b"21:4:kill,10:2:id,2:42,}]",
    b"10:4:kill,0:}]",
    b"23:4:kill,12:2:id,4:true!}]",
    b"24:4:kill,13:2:id,5:65535#}]",
    b"22:4:kill,11:2:id,3:1.5^}]",
    b"13:7:version,0:}]",
    b"10:4:nope,0:}]",
    b"10:4:HELP,0:}]",
    b"6:0:,0:}]",
    b"11:5:help\0,0:}]",
    b"garbage",
    b"",
    b"{",
    b"5:hello",
    b"0:~",
    b"1:x]",
    b"4:help,",
    b"1:1#",
    b"0:}",
    b"0:]",
    b"7:4:help,]",
    b"10:4:help,0:]]",
    b"10:4:help,0:~]",
    b"7:1:1#0:}]",
    b"6:0:~0:}]",
    b"16:4:help,0:}3:1.5^]",
    b"13:4:uuid,0:}0:~]",
    b"18:4:uuid,8:1:x,1:y,}]",
    b"10:4:uuid,0:}]\0",
    b"10:4:uuid,0:}]10:4:help,0:}]",
];

/// What both command-line clients are given (one line each; `status
/// what=net` then finds one idle connection, a one-row table).
const CLIENT_INPUT: &str = "help\nuuid\ninfo\nstatus what=net\nstatus what=foo\nstatus\n\
    kill id=99999\nkill id=-3\nnope\ntime\n";

/// One server's answers, normalised.
#[derive(Debug, PartialEq, Eq)]
struct ControlRun {
    /// Each of [`FIXED`] and its reply.
    fixed: Vec<(String, String)>,
    /// `time`, with its digits replaced.
    time: String,
    /// `status what=tasks` up to its rows.
    task_headers: String,
    /// `status what=net` with an idle client and one waiting on a handler
    /// (see [`rows_as`]).
    net: Vec<(&'static str, i64, i64, i64)>,
    /// `kill` of the waiting connection.
    kill: String,
    /// What its client read afterwards (nothing: closed).
    after_kill: Vec<u8>,
    /// The notice its handler got, the id written as `ID`.
    notice: Option<String>,
    /// `status what=net` after the kill.
    net_after_kill: Vec<(&'static str, i64, i64, i64)>,
    /// The same `kill` again.
    kill_again: String,
    /// `m2sh control`'s output for [`CLIENT_INPUT`], normalised.
    m2sh: String,
    /// `kennel control`'s.
    kennel_control: String,
    /// `reload`.
    reload: String,
    /// `stop`, if a reply came.
    stop: Option<String>,
}

/// Seconds-ago, descriptor and time values written as `*`, in the client
/// output (a one-row table prints as `header:  value` lines).
fn normalise_output(output: &str) -> String {
    output
        .lines()
        .map(|line| {
            for key in ["fd", "last_ping", "last_read", "last_write", "time"] {
                if line.starts_with(&format!("{key}:  ")) {
                    return format!("{key}:  *");
                }
            }
            line.to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows as (whose, type, bytes read, bytes written), sorted: both list
/// by descriptor, and which descriptor each server gives which client is
/// its own business.
fn rows_as(rows: &[[i64; 8]], waiting: i64) -> Vec<(&'static str, i64, i64, i64)> {
    let mut rows: Vec<_> = rows
        .iter()
        .map(|r| {
            let whose = match r[0] {
                -1 => "no id",
                id if id == waiting => "the waiting one",
                _ => "another",
            };
            (whose, r[2], r[6], r[7])
        })
        .collect();
    rows.sort();
    rows
}

/// The request of the connection that waits on the handler.
fn waiting_request(site: &Site) -> String {
    format!(
        "GET /json/x HTTP/1.1\r\nHost: {}\r\n\r\n",
        site.host_header()
    )
}

/// Polls `status what=net` until it has `n` rows (Mongrel2 registers a
/// connection as its task starts, Kennel as it accepts; either is quick).
fn net_of(req: &mut Req, n: usize) -> Vec<[i64; 8]> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let rows = net_rows(&req.ask(b"26:6:status,13:4:what,3:net,}]"));
        if rows.len() == n || std::time::Instant::now() > deadline {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs every step against the server on `addr` whose control port is
/// the site's `run/control`; the server is gone afterwards (`stop`).
fn exercise(site: &Site, addr: SocketAddr) -> ControlRun {
    let endpoint = endpoint(site);
    let mut req = Req::connect(&endpoint);
    let fixed = FIXED.iter().map(|r| (show(r), text(&req.ask(r)))).collect();
    let time = req
        .ask_text(b"10:4:time,0:}]")
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    let tasks = req.ask_text(b"28:6:status,15:4:what,5:tasks,}]");
    let task_headers =
        tasks[tasks.find(':').unwrap() + 1..tasks.find("4:rows,").unwrap()].to_owned();

    let capture = Capture::connect(site, Route::Json);
    capture.ping();
    let idle = TcpStream::connect(addr).unwrap();
    net_of(&mut req, 1);
    let mut waiting = TcpStream::connect(addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    waiting.write_all(waiting_request(site).as_bytes()).unwrap();
    let id = frame_id(&capture.recv("the request")).unwrap() as i64;
    let net = rows_as(&net_of(&mut req, 2), id);
    let kill = req.ask_text(&request("kill", &[("id", Arg::Int(id))]));
    let mut after_kill = Vec::new();
    let _ = waiting.read_to_end(&mut after_kill);
    let notice = capture
        .try_recv(Duration::from_millis(1500))
        .map(|frame| text(&frame).replacen(&format!(" {id} "), " ID ", 1));
    let net_after_kill = rows_as(&net_of(&mut req, 1), id);
    let kill_again = req.ask_text(&request("kill", &[("id", Arg::Int(id))]));

    let out = m2sh_control(site, CLIENT_INPUT);
    assert!(out.status.success(), "m2sh control: {}", text(&out.stderr));
    let m2sh = normalise_output(&text(&out.stdout));
    let db = site.db.to_str().unwrap();
    let out = kennel_control(site.root(), &["--db", db], CLIENT_INPUT);
    assert!(
        out.status.success(),
        "kennel control: {}",
        text(&out.stderr)
    );
    let kennel_control = normalise_output(&text(&out.stdout));

    drop(idle);
    net_of(&mut req, 0);
    // SIGHUP: both go on (Mongrel2 reopens its logs).
    let reload = req.ask_text(b"12:6:reload,0:}]");
    // Mongrel2's reply to `stop` races its own exit (its shutdown runs
    // while the control task waits to send): sometimes it comes, sometimes
    // not. Kennel replies, then drains.
    let stop = req
        .try_ask(b"10:4:stop,0:}]", Duration::from_secs(2))
        .map(|reply| text(&reply));
    ControlRun {
        fixed,
        time,
        task_headers,
        net,
        kill,
        after_kill,
        notice,
        net_after_kill,
        kill_again,
        m2sh,
        kennel_control,
        reload,
        stop,
    }
}

#[test]
fn the_control_port_answers_as_mongrel2s() {
    let site = Site::with_settings(DbKind::M2sh, &[("kennel.shutdown_grace_ms", "200")]);
    let mongrel2 = Mongrel2::start(&find_mongrel2(), &site);
    differential::control::wait_answering(&endpoint(&site), || Ok(()));
    let theirs = exercise(&site, mongrel2.addr);
    mongrel2.stop();

    let mut kennel = KennelProcess::start(&site, Some(&endpoint(&site)));
    let ours = exercise(&site, kennel.addr);
    assert!(kennel.wait_exit().success(), "kennel after stop");

    for ((request, m2), (_, k)) in theirs.fixed.iter().zip(&ours.fixed) {
        assert_eq!(k, m2, "the reply to {request}");
    }
    assert_eq!(ours.time, theirs.time);
    assert_eq!(ours.task_headers, theirs.task_headers);
    let asked = i64::try_from(waiting_request(&site).len()).unwrap();
    assert_eq!(
        theirs.net,
        [("no id", 0, 0, 0), ("the waiting one", 1, asked, 0)]
    );
    assert_eq!(ours.net, theirs.net);
    assert_eq!(ours.kill, theirs.kill);
    assert_eq!(ours.kill, "40:7:headers,9:6:status,]4:rows,8:5:2:OK,]]}");
    assert_eq!(ours.after_kill, theirs.after_kill);
    // A documented difference: Mongrel2 closes the socket but never tells
    // the handler (the connection's task is left waiting on the closed
    // descriptor); Kennel sends the usual disconnect notice.
    assert_eq!(theirs.notice, None, "Mongrel2 after kill");
    assert_eq!(
        ours.notice.as_deref(),
        Some("0c1e9a52-diff-json ID @* 17:{\"METHOD\":\"JSON\"},21:{\"type\":\"disconnect\"},"),
        "Kennel after kill"
    );
    assert_eq!(ours.net_after_kill, theirs.net_after_kill);
    assert_eq!(ours.kill_again, theirs.kill_again);
    // What m2sh printed for Mongrel2 (so the comparisons below compare
    // something): the map style of one row, the table style of several,
    // the errors, the one idle connection.
    for shown in [
        "uuid:  diff-server\n",
        "name  help  \nstop  stop the server (SIGINT)  \n",
        "info  information about this server  \n\nuuid:  diff-server\nport:  ",
        "default_hostname:  localhost\nid:  -1\nfd:  *\ntype:  0\nlast_ping:  *\n",
        "bytes_written:  0\nERROR: Expected argument what=['net'|'tasks'].\n\
         ERROR: Invalid argument type.\nERROR: Invalid argument type.\n\
         ERROR: Invalid argument type.\nERROR: Callback requested was not found.\ntime:  *",
    ] {
        assert!(theirs.m2sh.contains(shown), "{shown:?} in {}", theirs.m2sh);
    }
    assert_eq!(ours.m2sh, theirs.m2sh, "m2sh control's output");
    assert_eq!(
        theirs.kennel_control, theirs.m2sh,
        "kennel control and m2sh control, Mongrel2"
    );
    assert_eq!(
        ours.kennel_control, ours.m2sh,
        "kennel control and m2sh control, Kennel"
    );
    assert_eq!(ours.reload, theirs.reload);
    let sent = "59:7:headers,6:3:msg,]4:rows,29:25:21:signal sent to server,]]}";
    assert_eq!(ours.reload, sent);
    assert_eq!(ours.stop.as_deref(), Some(sent), "Kennel answers stop");
    if let Some(theirs) = &theirs.stop {
        assert_eq!(theirs, sent, "Mongrel2's answer to stop, when it comes");
    }
    assert_eq!(
        ControlRun {
            stop: None,
            notice: None,
            ..ours
        },
        ControlRun {
            stop: None,
            ..theirs
        }
    );
}
