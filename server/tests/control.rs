//! The control port of a real `kennel` process (`kennel serve`, in the
//! foreground, on a free port, with `ipc://` control sockets in a temp
//! dir), driven by a ZeroMQ REQ client written here, every reply asserted
//! byte for byte; and its client, `kennel control`, one command at a time
//! and at its prompt with stdin piped. `control_differential.rs` holds the
//! same commands against the real Mongrel2.

mod common;
mod differential;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use differential::control::{
    endpoint, kennel_binary, kennel_control, net_rows, request, run_with_input, text, Arg,
    KennelProcess, Req,
};
use differential::databases::DbKind;
use differential::{frame_id, Capture, Route, Site, REPLY};
use kennel_handler::tnetstring::Value;

/// Drained in a fifth of a second, so stopping takes no time.
const SETTINGS: &[(&str, &str)] = &[("kennel.shutdown_grace_ms", "200")];

const HELP: &str = "416:7:headers,14:4:name,4:help,]4:rows,376:35:4:stop,24:stop the server (SIGINT),]\
    30:6:reload,17:reload the server,]23:4:help,12:this command,]37:12:control_stop,17:stop control port,]\
    28:4:kill,17:kill a connection,]41:6:status,28:status, what=['net'|'tasks'],]\
    46:9:terminate,30:terminate the server (SIGTERM),]28:4:time,17:the server's time,]\
    28:4:uuid,17:the server's uuid,]40:4:info,29:information about this server,]]}";
const INVALID_DATA: &str = "97:4:code,12:INVALID_DATA,5:error,62:Invalid data, expecting a list with a string and a hash in it.,}";
const INVALID_REQUEST: &str = "101:4:code,15:INVALID_REQUEST,5:error,63:Invalid request format, must be a list with two elements in it.,}";
const INVALID_ARGUMENT: &str = "61:4:code,16:INVALID_ARGUMENT,5:error,22:Invalid argument type.,}";
const CALLBACK_NOT_FOUND: &str =
    "74:4:code,18:CALLBACK_NOT_FOUND,5:error,33:Callback requested was not found.,}";
const WHAT_ERROR: &str = "51:5:error,39:Expected argument what=['net'|'tasks'].,}";
const NET_EMPTY: &str = "110:7:headers,86:2:id,2:fd,4:type,9:last_ping,9:last_read,10:last_write,10:bytes_read,13:bytes_written,]4:rows,0:]}";
const KILLED: &str = "40:7:headers,9:6:status,]4:rows,8:5:2:OK,]]}";
const SIGNAL_SENT: &str = "59:7:headers,6:3:msg,]4:rows,29:25:21:signal sent to server,]]}";
const CONTROL_STOPPED: &str = "63:7:headers,6:3:msg,]4:rows,33:29:25:stopping the control port,]]}";

fn site() -> Site {
    Site::with_settings(DbKind::KennelSchema, SETTINGS)
}

/// `{"headers": [...], "rows": [[...]]}` with string cells, encoded by the
/// SDK's codec.
fn table(headers: &[&str], rows: &[&[&str]]) -> String {
    fn strings<'a>(cells: &[&'a str]) -> Value<'a> {
        Value::List(cells.iter().map(|c| Value::String(c.as_bytes())).collect())
    }
    let rows = Value::List(rows.iter().map(|r| strings(r)).collect());
    text(&Value::Dict(vec![(&b"headers"[..], strings(headers)), (b"rows", rows)]).to_vec())
}

/// Polls `status what=net` until `holds` says yes.
fn net_until(req: &mut Req, what: &str, holds: impl Fn(&[[i64; 8]]) -> bool) -> Vec<[i64; 8]> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = net_rows(&req.ask(b"26:6:status,13:4:what,3:net,}]"));
        if holds(&rows) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: status what=net says {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_command_answers_with_mongrels_bytes() {
    let site = site();
    let endpoint = endpoint(&site);
    let kennel = KennelProcess::start(&site, Some(&endpoint));
    let mut req = Req::connect(&endpoint);
    assert_eq!(req.ask_text(b"10:4:help,0:}]"), HELP);
    assert_eq!(
        req.ask_text(b"10:4:uuid,0:}]"),
        table(&["uuid"], &[&["diff-server"]])
    );
    let root = site.root().display().to_string();
    let (access, error, pid) = (
        format!("{root}/logs/access.log"),
        format!("{root}/logs/error.log"),
        format!("{root}/run/mongrel2.pid"),
    );
    // Mongrel2's `INFO_HEADERS` (`mongrel2/src/control.c`), then the row.
    let row = Value::List(vec![Value::List(vec![
        Value::Integer(i64::from(site.port)),
        Value::String(b"127.0.0.1"),
        Value::String(b"diff-server"),
        Value::String(b""),
        Value::String(access.as_bytes()),
        Value::String(error.as_bytes()),
        Value::String(pid.as_bytes()),
        Value::String(b"localhost"),
    ])]);
    let payload = format!(
        "7:headers,92:4:port,9:bind_addr,4:uuid,6:chroot,10:access_log,9:error_log,8:pid_file,16:default_hostname,]4:rows,{}",
        text(&row.to_vec())
    );
    assert_eq!(
        req.ask_text(b"10:4:info,0:}]"),
        format!("{}:{payload}}}", payload.len())
    );
    // time: the server's clock, in seconds.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let time = req.ask_text(b"10:4:time,0:}]");
    let value = kennel_handler::tnetstring::parse(time.as_bytes()).unwrap();
    let shown: u64 = value.get("rows").unwrap().as_list().unwrap()[0]
        .as_list()
        .unwrap()[0]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shown.abs_diff(before) <= 2, "{time}");
    assert_eq!(time, table(&["time"], &[&[&shown.to_string()]]));
    assert_eq!(req.ask_text(b"26:6:status,13:4:what,3:net,}]"), NET_EMPTY);
    // status what=tasks: Mongrel2's headers; Kennel's own rows.
    let tasks = req.ask_text(b"28:6:status,15:4:what,5:tasks,}]");
    assert!(
        tasks.contains(":7:headers,38:2:id,6:system,4:name,5:state,6:status,]4:rows,"),
        "{tasks}"
    );
    for row in [
        "1:1#5:false!6:SERVER,7:read fd,4:idle,]",
        "12:Handler_task,12:read handler,4:idle,]",
        "7:control,8:replying,7:running,]",
        "6:ticker,7:waiting,4:idle,]",
        "4:true!7:runtime,",
    ] {
        assert!(tasks.contains(row), "{row} in {tasks}");
    }
    let cases: &[(&[u8], &str)] = &[
        (b"26:6:status,13:4:what,3:foo,}]", WHAT_ERROR),
        (b"12:6:status,0:}]", INVALID_ARGUMENT),
        (b"24:6:status,11:4:what,1:1#}]", INVALID_ARGUMENT),
        (b"21:4:kill,10:2:id,2:42#}]", INVALID_ARGUMENT),
        (b"21:4:kill,10:2:id,2:-1#}]", INVALID_ARGUMENT),
        (b"21:4:kill,10:2:id,2:42,}]", INVALID_ARGUMENT),
        (b"10:4:kill,0:}]", INVALID_ARGUMENT),
        (b"13:7:version,0:}]", CALLBACK_NOT_FOUND),
        (b"10:4:HELP,0:}]", CALLBACK_NOT_FOUND),
        (b"garbage", INVALID_DATA),
        (b"", INVALID_DATA),
        (b"0:~", INVALID_DATA),
        (b"22:4:kill,11:2:id,3:1.5^}]", INVALID_DATA),
        (b"4:help,", INVALID_REQUEST),
        (b"0:}", INVALID_REQUEST),
        (b"0:]", INVALID_DATA),
        (b"7:4:help,]", INVALID_DATA),
        (b"10:4:help,0:]]", INVALID_DATA),
        // m2sh sends a NUL after the request: ignored.
        (b"10:4:help,0:}]\0", HELP),
    ];
    for (request, expected) in cases {
        assert_eq!(
            req.ask_text(request),
            *expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
    kennel.stop();
    assert!(
        !site.root().join("run/control").exists(),
        "the socket file goes with the server"
    );
}

#[test]
fn status_net_counts_each_connection_and_kill_closes_one() {
    let site = site();
    let endpoint = endpoint(&site);
    let kennel = KennelProcess::start(&site, Some(&endpoint));
    let capture = Capture::connect(&site, Route::Json);
    capture.ping();
    let mut req = Req::connect(&endpoint);

    // An idle connection: no id yet, no request read (type 0), as in
    // Mongrel2.
    let idle = TcpStream::connect(kennel.addr).unwrap();
    let rows = net_until(&mut req, "the idle connection", |rows| rows.len() == 1);
    let [id, idle_fd, kind, _, last_read, last_write, read, written] = rows[0];
    assert_eq!(
        (id, kind, last_read, last_write, read, written),
        (-1, 0, 0, 0, 0, 0)
    );

    // A request to a handler: an id, type 1, the request's bytes read.
    let ask = format!(
        "GET /json/x HTTP/1.1\r\nHost: {}\r\n\r\n",
        site.host_header()
    );
    let mut client = TcpStream::connect(kennel.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(ask.as_bytes()).unwrap();
    let frame = capture.recv("the request");
    let conn = frame_id(&frame).expect("a connection id");
    let rows = net_until(&mut req, "the handler's connection", |rows| {
        rows.len() == 2 && rows[1][6] == ask.len() as i64
    });
    assert_eq!(rows[0][1], idle_fd);
    let [id, fd, kind, _, _, last_write, read, written] = rows[1];
    assert!(fd > idle_fd);
    assert_eq!(
        (id, kind, last_write, read, written),
        (conn as i64, 1, 0, ask.len() as i64, 0)
    );

    // Its reply is counted as written.
    capture.reply(conn, REPLY);
    let mut got = vec![0; REPLY.len()];
    client.read_exact(&mut got).unwrap();
    assert_eq!(got, REPLY);
    net_until(&mut req, "the reply's bytes", |rows| {
        rows.get(1).is_some_and(|r| r[7] == REPLY.len() as i64)
    });

    // A WebSocket is type 3 from its upgrade request on.
    let upgrade = String::from_utf8_lossy(differential::websocket::UPGRADE)
        .replace("{p}", "/json/")
        .replace("{host}", &site.host_header());
    let mut ws = TcpStream::connect(kennel.addr).unwrap();
    ws.write_all(upgrade.as_bytes()).unwrap();
    let handshake = capture.recv("the WebSocket handshake");
    let ws_id = frame_id(&handshake).unwrap();
    let rows = net_until(&mut req, "the WebSocket", |rows| rows.len() == 3);
    assert_eq!((rows[2][0], rows[2][2]), (ws_id as i64, 3));

    // kill: the connection is dropped at once and its handler told.
    assert_eq!(
        req.ask_text(&request("kill", &[("id", Arg::Int(conn as i64))])),
        KILLED
    );
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    assert!(rest.is_empty(), "after the kill: {rest:?}");
    let notice = capture.recv("the disconnect notice");
    assert_eq!(
        text(&notice),
        format!(
            "{} {conn} @* 17:{{\"METHOD\":\"JSON\"}},21:{{\"type\":\"disconnect\"}},",
            Route::Json.send_ident()
        )
    );
    let rows = net_until(&mut req, "the kill", |rows| rows.len() == 2);
    assert_eq!((rows[0][1], rows[1][0]), (idle_fd, ws_id as i64));
    // Gone: a second kill finds nothing.
    assert_eq!(
        req.ask_text(&request("kill", &[("id", Arg::Int(conn as i64))])),
        INVALID_ARGUMENT
    );
    drop((idle, ws));
    net_until(&mut req, "the clients leaving", <[_]>::is_empty);
    kennel.stop();
}

#[test]
fn stop_terminate_and_reload_signal_the_server() {
    let site = site();
    let endpoint = endpoint(&site);
    let mut kennel = KennelProcess::start(&site, Some(&endpoint));
    let mut req = Req::connect(&endpoint);
    // SIGHUP: the server goes on.
    assert_eq!(req.ask_text(b"12:6:reload,0:}]"), SIGNAL_SENT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(kennel.running());
    assert_eq!(
        req.ask_text(b"10:4:uuid,0:}]"),
        table(&["uuid"], &[&["diff-server"]])
    );
    // SIGTERM: drained and gone, the reply first.
    assert_eq!(req.ask_text(b"15:9:terminate,0:}]"), SIGNAL_SENT);
    assert!(kennel.wait_exit().success());
    assert!(kennel.log().contains("SIGTERM"), "{}", kennel.log());

    let mut kennel = KennelProcess::start(&site, Some(&endpoint));
    let mut req = Req::connect(&endpoint);
    assert_eq!(req.ask_text(b"10:4:stop,0:}]"), SIGNAL_SENT);
    assert!(kennel.wait_exit().success());
    assert!(kennel.log().contains("SIGINT"), "{}", kennel.log());
    assert!(!site.root().join("run/control").exists());
}

#[test]
fn control_stop_ends_the_control_port_and_nothing_else() {
    let site = site();
    let endpoint = endpoint(&site);
    let kennel = KennelProcess::start(&site, Some(&endpoint));
    let mut req = Req::connect(&endpoint);
    assert_eq!(req.ask_text(b"19:12:control_stop,0:}]"), CONTROL_STOPPED);
    let mut again = Req::connect(&endpoint);
    assert_eq!(
        again.try_ask(b"10:4:uuid,0:}]", Duration::from_millis(500)),
        None,
        "the control port still answers"
    );
    // The server serves on.
    let mut client = differential::Client::connect(kennel.addr);
    client.send(
        format!(
            "GET /nothing HTTP/1.1\r\nHost: {}\r\n\r\n",
            site.host_header()
        )
        .as_bytes(),
    );
    assert!(text(&client.read_response()).starts_with("HTTP/1.1 404 "));
    let out = kennel_control(
        site.root(),
        &["--db", site.db.to_str().unwrap(), "uuid"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing listens at ipc://run/control: no such socket"),
        "{}",
        text(&out.stderr)
    );
    kennel.stop();
}

/// `kennel serve` that should exit by itself: its status and what it said.
fn serve_fails(dir: &std::path::Path, db: &std::path::Path) -> (Option<i32>, String) {
    let mut command = Command::new(kennel_binary());
    command.args(["serve", "--db"]).arg(db).current_dir(dir);
    let out = run_with_input(command, "");
    (out.status.code(), text(&out.stdout) + &text(&out.stderr))
}

fn set(site: &Site, sql: &str) {
    rusqlite::Connection::open(&site.db)
        .unwrap()
        .execute_batch(&sql.replace("{root}", &site.root().display().to_string()))
        .unwrap();
}

#[test]
fn a_configured_control_port_that_cannot_be_bound_stops_the_start() {
    let site = site();
    let root = site.root().display().to_string();
    // A regular file where the socket's directory should be: no directory
    // can be made there, so the bind fails.
    std::fs::write(site.root().join("afile"), "").unwrap();
    set(
        &site,
        "UPDATE server SET control_port = 'ipc://{root}/afile/dir/control'",
    );
    let (code, said) = serve_fails(site.root(), &site.db);
    assert_eq!(code, Some(64), "{said}");
    assert!(
        said.contains(&format!(
            "server 1: column control_port: cannot bind the control port \
             \"ipc://{root}/afile/dir/control\": {root}/afile/dir: Not a directory (os error 20)"
        )),
        "{said}"
    );
    assert!(!site.root().join("run/mongrel2.pid").exists());

    set(
        &site,
        "UPDATE server SET control_port = '';
         INSERT INTO setting (key, value) VALUES ('control_port', 'ipc://{root}/afile/control');",
    );
    let (code, said) = serve_fails(site.root(), &site.db);
    assert_eq!(code, Some(64), "{said}");
    assert!(
        said.contains(&format!(
            "server 1: column control_port: cannot bind the control port \"ipc://{root}/afile/control\" \
             (the control_port setting; the column is empty): {root}/afile is not a directory"
        )),
        "{said}"
    );
}

#[test]
fn the_default_control_port_is_best_effort_as_in_mongrel2() {
    // A working directory where run/ cannot be made: Mongrel2's default
    // cannot be bound; the server runs without a control port and says so.
    let site = site();
    let elsewhere = tempfile::tempdir().unwrap();
    // `run` is a file there, so `run/control` cannot be made.
    std::fs::write(elsewhere.path().join("run"), "").unwrap();
    let kennel = KennelProcess::start_in(&site.db, elsewhere.path(), site.port, None);
    let log = kennel.log();
    assert!(
        log.contains("running without a control port")
            && log.contains(
                "cannot bind the control port \"ipc://run/control\" (Mongrel2's default; \
                 the column and the control_port setting are empty)"
            ),
        "{log}"
    );
    kennel.stop();
}

#[test]
fn a_live_control_socket_is_not_taken_over() {
    let site = site();
    set(
        &site,
        "UPDATE server SET control_port = 'ipc://{root}/shared-control'",
    );
    let shared = format!("ipc://{}/shared-control", site.root().display());
    let first = KennelProcess::start(&site, Some(&shared));
    // A second server (another port) configured with the same socket.
    let other = tempfile::tempdir().unwrap();
    let db = other.path().join("other.sqlite");
    std::fs::copy(&site.db, &db).unwrap();
    let port = differential::free_port();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE server SET port = ?1, pid_file = ''",
            [i64::from(port)],
        )
        .unwrap();
    let (code, said) = serve_fails(other.path(), &db);
    assert_eq!(code, Some(64), "{said}");
    assert!(said.contains("another process is listening at"), "{said}");
    // The first still answers.
    assert_eq!(
        Req::connect(&shared).ask_text(b"10:4:uuid,0:}]"),
        table(&["uuid"], &[&["diff-server"]])
    );
    first.stop();
}

#[test]
fn kennel_control_runs_one_command_or_a_prompt() {
    let site = site();
    let endpoint = endpoint(&site);
    let kennel = KennelProcess::start(&site, Some(&endpoint));
    let db = site.db.to_str().unwrap();
    let root = site.root();

    // One command, printed as m2sh prints it.
    let out = kennel_control(root, &["--db", db, "uuid"], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "uuid:  diff-server\n");
    let out = kennel_control(
        root,
        &["--db", db, "--server", "diff", "status", "what=net"],
        "",
    );
    assert_eq!(
        text(&out.stdout),
        "id  fd  type  last_ping  last_read  last_write  bytes_read  bytes_written  \n\n"
    );
    // An error reply: m2sh's line on stdout, the code on stderr, exit 1.
    let out = kennel_control(root, &["--endpoint", &endpoint, "kill", "id=12345"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "ERROR: Invalid argument type.\n");
    assert!(
        text(&out.stderr).contains("INVALID_ARGUMENT"),
        "{}",
        text(&out.stderr)
    );
    // --raw: the reply's bytes.
    let out = kennel_control(root, &["--endpoint", &endpoint, "--raw", "help"], "");
    assert_eq!(text(&out.stdout), format!("{HELP}\n"));
    // From elsewhere, the database's relative spec means the server's
    // directory only with --endpoint.
    let out = kennel_control(std::path::Path::new("/"), &["--db", db, "uuid"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    // The prompt, stdin piped (so no prompt is printed): each line's reply
    // as m2sh prints it; a bad line is reported on stderr and skipped.
    let input = "uuid\n\n  status   what=foo \nstatus what\nkill id=-3\nnope\nhelp\n";
    let out = kennel_control(root, &["--db", db], input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "uuid:  diff-server\n\
         ERROR: Expected argument what=['net'|'tasks'].\n\
         ERROR: Invalid argument type.\n\
         ERROR: Callback requested was not found.\n\
         name  help  \n\
         stop  stop the server (SIGINT)  \n\
         reload  reload the server  \n\
         help  this command  \n\
         control_stop  stop control port  \n\
         kill  kill a connection  \n\
         status  status, what=['net'|'tasks']  \n\
         terminate  terminate the server (SIGTERM)  \n\
         time  the server's time  \n\
         uuid  the server's uuid  \n\
         info  information about this server  \n\n"
    );
    assert_eq!(
        text(&out.stderr),
        "kennel: USAGE: command arg1=val1 arg2=val2 (not key=value: \"what\")\n"
    );
    kennel.stop();

    // No server: said at once, exit 1.
    let out = kennel_control(root, &["--db", db, "uuid"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nothing listens at"),
        "{}",
        text(&out.stderr)
    );
}

/// A relative `ipc://` control port is inside the chroot, for the server
/// (which runs there: chrooted as root, in "test mode" otherwise) and for
/// `kennel control`, which finds it from any directory.
#[test]
fn a_relative_control_port_is_inside_the_chroot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for sub in ["run", "logs", "public"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    let port = differential::free_port();
    let sql = format!(
        "INSERT INTO server (id, uuid, name, access_log, error_log, chroot, pid_file, default_host, bind_addr, port)
           VALUES (1, 'chrooted', 'jail', '/logs/access.log', '/logs/error.log', '{root}', '/run/kennel.pid', 'localhost', '127.0.0.1', {port});
         INSERT INTO host (id, server_id, name, matching) VALUES (1, 1, 'localhost', 'localhost');
         INSERT INTO directory (id, base, index_file, default_ctype) VALUES (1, 'public/', 'index.html', 'text/plain');
         INSERT INTO route (path, host_id, target_id, target_type) VALUES ('/', 1, 1, 'dir');
         INSERT INTO setting (key, value) VALUES ('server.daemonize', '0'), ('kennel.shutdown_grace_ms', '200');",
        root = root.display()
    );
    let db = root.join("config.sqlite");
    kennel::config::apply_sql(&db, &sql).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let control = format!("ipc://{}/run/control", root.display());
    let kennel = KennelProcess::start_in(&db, outside.path(), port, Some(&control));
    let out = kennel_control(
        std::path::Path::new("/"),
        &["--db", db.to_str().unwrap(), "uuid"],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "uuid:  chrooted\n");
    kennel.stop();
}
