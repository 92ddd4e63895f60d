//! The commands against a stand-in server, every reply compared with the
//! bytes Mongrel2 1.12.2 sends for the same request (captured from the
//! Debian build; `server/tests/control_differential.rs` checks them
//! against the running Mongrel2 too).

use std::cell::RefCell;

use super::*;

#[derive(Default)]
struct Stub {
    rows: Vec<Row>,
    live: Vec<u64>,
    killed: RefCell<Vec<u64>>,
    signals: RefCell<Vec<Signal>>,
    signal_fails: bool,
}

impl Controlled for Stub {
    fn info(&self) -> Info {
        Info {
            port: 16999,
            bind_addr: "127.0.0.1".into(),
            uuid: "m2test-server".into(),
            chroot: String::new(),
            access_log: "/tmp/m2c/logs/access.log".into(),
            error_log: "/tmp/m2c/logs/error.log".into(),
            pid_file: "/tmp/m2c/run/mongrel2.pid".into(),
            default_hostname: "localhost".into(),
        }
    }

    fn connections(&self) -> Vec<Row> {
        self.rows.clone()
    }

    fn tasks(&self) -> Vec<Task> {
        vec![
            Task {
                id: 1,
                system: false,
                name: "SERVER".into(),
                state: "read fd".into(),
                status: "idle",
            },
            Task {
                id: 2,
                system: true,
                name: "fdtask".into(),
                state: "yield".into(),
                status: "ready",
            },
        ]
    }

    fn kill(&self, id: u64) -> bool {
        self.killed.borrow_mut().push(id);
        self.live.contains(&id)
    }

    fn signal(&self, signal: Signal) -> bool {
        self.signals.borrow_mut().push(signal);
        !self.signal_fails
    }

    fn unix_time(&self) -> i64 {
        1_796_357_984
    }
}

fn reply(request: &[u8], stub: &Stub) -> String {
    let answer = execute(request, stub);
    assert!(!answer.stop, "{}", String::from_utf8_lossy(request));
    String::from_utf8(answer.reply).unwrap()
}

/// Every one of `requests` is answered `expected`.
fn replies_all(requests: &[&[u8]], expected: &str, stub: &Stub) {
    for request in requests {
        assert_eq!(
            reply(request, stub),
            expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

const INVALID_DATA: &str = "97:4:code,12:INVALID_DATA,5:error,62:Invalid data, expecting a list with a string and a hash in it.,}";
const INVALID_REQUEST: &str = "101:4:code,15:INVALID_REQUEST,5:error,63:Invalid request format, must be a list with two elements in it.,}";
const INVALID_ARGUMENT: &str = "61:4:code,16:INVALID_ARGUMENT,5:error,22:Invalid argument type.,}";
const CALLBACK_NOT_FOUND: &str =
    "74:4:code,18:CALLBACK_NOT_FOUND,5:error,33:Callback requested was not found.,}";

#[test]
fn every_fault_is_mongrels_constant() {
    // `mongrel2/src/control.c`, the `*_ERR` strings.
    let expected = [
        (Fault::InvalidRequest, INVALID_REQUEST),
        (Fault::InvalidData, INVALID_DATA),
        (Fault::CallbackReturn, "91:4:code,15:CALLBACK_RETURN,5:error,53:Callback failed and returned NULL, should not happen.,}"),
        (Fault::CallbackNotFound, CALLBACK_NOT_FOUND),
        (Fault::SignalFailed, "75:4:code,13:SIGNAL_FAILED,5:error,39:raise call failed, can't signal process,}"),
        (Fault::InvalidArgument, INVALID_ARGUMENT),
        (Fault::NotConnected, "57:4:code,13:NOT_CONNECTED,5:error,21:Socket not connected.,}"),
    ];
    for (fault, bytes) in expected {
        assert_eq!(
            String::from_utf8(fault.reply()).unwrap(),
            bytes,
            "{fault:?}"
        );
    }
}

#[test]
fn help_uuid_time_and_info_are_mongrels_bytes() {
    let stub = Stub::default();
    assert_eq!(
        reply(b"10:4:help,0:}]", &stub),
        "416:7:headers,14:4:name,4:help,]4:rows,376:35:4:stop,24:stop the server (SIGINT),]\
         30:6:reload,17:reload the server,]23:4:help,12:this command,]37:12:control_stop,17:stop control port,]\
         28:4:kill,17:kill a connection,]41:6:status,28:status, what=['net'|'tasks'],]\
         46:9:terminate,30:terminate the server (SIGTERM),]28:4:time,17:the server's time,]\
         28:4:uuid,17:the server's uuid,]40:4:info,29:information about this server,]]}"
    );
    assert_eq!(
        reply(b"10:4:uuid,0:}]", &stub),
        "52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}"
    );
    assert_eq!(
        reply(b"10:4:time,0:}]", &stub),
        "49:7:headers,7:4:time,]4:rows,18:14:10:1796357984,]]}"
    );
    assert_eq!(
        reply(b"10:4:info,0:}]", &stub),
        "259:7:headers,92:4:port,9:bind_addr,4:uuid,6:chroot,10:access_log,9:error_log,8:pid_file,16:default_hostname,]\
         4:rows,141:136:5:16999#9:127.0.0.1,13:m2test-server,0:,24:/tmp/m2c/logs/access.log,23:/tmp/m2c/logs/error.log,\
         25:/tmp/m2c/run/mongrel2.pid,9:localhost,]]}"
    );
}

#[test]
fn status_net_lists_the_rows_as_mongrel2_does() {
    let mut stub = Stub::default();
    assert_eq!(
        reply(b"26:6:status,13:4:what,3:net,}]", &stub),
        "110:7:headers,86:2:id,2:fd,4:type,9:last_ping,9:last_read,10:last_write,10:bytes_read,13:bytes_written,]4:rows,0:]}"
    );
    // Mongrel2's reply for an idle connection (no id yet) and one waiting
    // on a handler, ten seconds on.
    stub.rows = vec![
        Row {
            id: None,
            fd: 21,
            kind: 0,
            last_ping: 10,
            last_read: 0,
            last_write: 0,
            bytes_read: 0,
            bytes_written: 0,
        },
        Row {
            id: Some(1),
            fd: 22,
            kind: 1,
            last_ping: 10,
            last_read: 10,
            last_write: 0,
            bytes_read: 38,
            bytes_written: 0,
        },
    ];
    assert_eq!(
        reply(b"26:6:status,13:4:what,3:net,}]", &stub),
        "190:7:headers,86:2:id,2:fd,4:type,9:last_ping,9:last_read,10:last_write,10:bytes_read,13:bytes_written,]\
         4:rows,79:35:2:-1#2:21#1:0#2:10#1:0#1:0#1:0#1:0#]36:1:1#2:22#1:1#2:10#2:10#1:0#2:38#1:0#]]}"
    );
}

#[test]
fn status_tasks_and_its_argument_errors() {
    let stub = Stub::default();
    assert_eq!(
        reply(b"28:6:status,15:4:what,5:tasks,}]", &stub),
        "145:7:headers,38:2:id,6:system,4:name,5:state,6:status,]4:rows,\
         82:38:1:1#5:false!6:SERVER,7:read fd,4:idle,]36:1:2#4:true!6:fdtask,5:yield,5:ready,]]}"
    );
    let what = "51:5:error,39:Expected argument what=['net'|'tasks'].,}";
    assert_eq!(reply(b"26:6:status,13:4:what,3:foo,}]", &stub), what);
    assert_eq!(reply(b"29:6:status,16:4:what,6:tasks ,}]", &stub), what);
    assert_eq!(reply(b"27:6:status,14:4:what,4:net\0,}]", &stub), what);
    replies_all(
        &[
            b"12:6:status,0:}]",
            b"24:6:status,11:4:what,1:1#}]",
            b"23:6:status,10:4:what,0:~}]",
            b"27:6:status,14:4:what,4:1:1#]}]",
        ],
        INVALID_ARGUMENT,
        &stub,
    );
    // Other arguments are ignored.
    assert!(reply(b"38:6:status,25:4:what,3:net,5:extra,1:1#}]", &stub).starts_with("110:"));
}

#[test]
fn kill_takes_a_live_id_only() {
    let stub = Stub {
        live: vec![4],
        ..Stub::default()
    };
    assert_eq!(
        reply(b"19:4:kill,9:2:id,1:4#}]", &stub),
        "40:7:headers,9:6:status,]4:rows,8:5:2:OK,]]}"
    );
    replies_all(
        &[
            b"21:4:kill,10:2:id,2:42#}]",
            b"21:4:kill,10:2:id,2:42,}]",
            b"21:4:kill,10:2:id,2:-1#}]",
            b"10:4:kill,0:}]",
            b"23:4:kill,12:2:id,4:true!}]",
        ],
        INVALID_ARGUMENT,
        &stub,
    );
    // Only integers reach the server: 4, then 42.
    assert_eq!(*stub.killed.borrow(), vec![4, 42]);
}

#[test]
fn signals_and_control_stop() {
    let stub = Stub::default();
    let sent = "59:7:headers,6:3:msg,]4:rows,29:25:21:signal sent to server,]]}";
    assert_eq!(reply(b"10:4:stop,0:}]", &stub), sent);
    assert_eq!(reply(b"15:9:terminate,0:}]", &stub), sent);
    assert_eq!(reply(b"12:6:reload,0:}]", &stub), sent);
    assert_eq!(
        *stub.signals.borrow(),
        vec![Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP]
    );
    let failing = Stub {
        signal_fails: true,
        ..Stub::default()
    };
    assert_eq!(
        reply(b"10:4:stop,0:}]", &failing),
        String::from_utf8(Fault::SignalFailed.reply()).unwrap()
    );
    let answer = execute(b"19:12:control_stop,0:}]", &stub);
    assert!(answer.stop);
    assert_eq!(
        String::from_utf8(answer.reply).unwrap(),
        "63:7:headers,6:3:msg,]4:rows,33:29:25:stopping the control port,]]}"
    );
}

#[test]
fn malformed_requests_get_mongrels_errors() {
    let stub = Stub::default();
    let cases: &[(&[u8], &str)] = &[
        (b"garbage", INVALID_DATA),
        (b"", INVALID_DATA),
        (b"{", INVALID_DATA),
        (b"5:hello", INVALID_DATA),
        (b"0:~", INVALID_DATA),
        (b"1:x]", INVALID_DATA),
        (b"4:help,", INVALID_REQUEST),
        (b"1:1#", INVALID_REQUEST),
        (b"0:}", INVALID_REQUEST),
        (b"0:]", INVALID_DATA),
        (b"7:4:help,]", INVALID_DATA),
        (b"10:4:help,0:]]", INVALID_DATA),
        (b"10:4:help,0:~]", INVALID_DATA),
        (b"7:1:1#0:}]", INVALID_DATA),
        (b"6:0:~0:}]", INVALID_DATA),
        // A float anywhere: Mongrel2's parser refuses the whole request.
        (b"22:4:kill,11:2:id,3:1.5^}]", INVALID_DATA),
        (b"16:4:help,0:}3:1.5^]", INVALID_DATA),
        (b"13:7:version,0:}]", CALLBACK_NOT_FOUND),
        (b"10:4:nope,0:}]", CALLBACK_NOT_FOUND),
        (b"10:4:HELP,0:}]", CALLBACK_NOT_FOUND),
        (b"6:0:,0:}]", CALLBACK_NOT_FOUND),
        (b"11:5:help\0,0:}]", CALLBACK_NOT_FOUND),
    ];
    for (request, expected) in cases {
        assert_eq!(
            reply(request, &stub),
            *expected,
            "{}",
            String::from_utf8_lossy(request)
        );
    }
}

#[test]
fn bytes_after_the_request_and_after_the_args_are_ignored() {
    let stub = Stub::default();
    replies_all(
        &[
            // m2sh sends a NUL after the tnetstring.
            b"10:4:uuid,0:}]\0",
            b"10:4:uuid,0:}]10:4:help,0:}]",
            b"13:4:uuid,0:}0:~]",
            b"18:4:uuid,8:1:x,1:y,}]",
        ],
        "52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}",
        &stub,
    );
}

/// A real socket: the thread answers, a second bind of the same `ipc://`
/// path is refused while the first answers, and stop ends the thread.
#[test]
fn the_port_answers_on_its_socket_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("ipc://{}/control", dir.path().display());
    let port = ControlPort::bind(&spec, Box::new(SendStub)).unwrap();
    let context = zmq::Context::new();
    let req = context.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.connect(&spec).unwrap();
    req.send(&b"10:4:uuid,0:}]"[..], 0).unwrap();
    assert!(req.poll(zmq::POLLIN, 5000).unwrap() > 0, "no reply");
    assert_eq!(
        req.recv_bytes(0).unwrap(),
        b"43:7:headers,7:4:uuid,]4:rows,12:9:6:stub-1,]]}"
    );
    match ControlPort::bind(&spec, Box::new(SendStub)) {
        Err(BindError::Bind(reason)) => assert!(reason.contains("another process"), "{reason}"),
        other => panic!("a second bind: {other:?}"),
    }
    port.stop();
    // Closed: a stale socket file no longer answers, and may be bound again.
    let again = ControlPort::bind(&spec, Box::new(SendStub)).unwrap();
    drop(again);
}

struct SendStub;

impl Controlled for SendStub {
    fn info(&self) -> Info {
        Info {
            uuid: "stub-1".into(),
            ..Info::default()
        }
    }
    fn connections(&self) -> Vec<Row> {
        Vec::new()
    }
    fn tasks(&self) -> Vec<Task> {
        Vec::new()
    }
    fn kill(&self, _: u64) -> bool {
        false
    }
    fn signal(&self, _: Signal) -> bool {
        false
    }
    fn unix_time(&self) -> i64 {
        0
    }
}
