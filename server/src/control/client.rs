//! `kennel control`: a client of a server's control port, as Mongrel2's
//! `m2sh control` is (`mongrel2/tools/m2sh/src/commands/running.c`).
//!
//! Owns the client side: where the control port of a configured server is
//! ([`endpoint_of`]), turning a command line `cmd key=value ...` into the
//! request tnetstring ([`request_of_line`], [`request_of_words`]), the
//! REQ socket with its reply deadline ([`Session`]), and printing a reply
//! exactly as `m2sh control` does ([`display`]). The `kennel control`
//! command itself (interactive or one command) is in [`crate::cli`].
//!
//! One difference from m2sh, on purpose: m2sh always connects to
//! `ipc://<chroot>/run/control`, whatever the server's `control_port`
//! says; Kennel's client connects where the server binds, the configured
//! spec, with a relative `ipc://` path taken inside the chroot.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use kennel_handler::tnetstring::{self, Value};

use crate::config::Snapshot;

/// How long [`Session::ask`] waits for a reply by default: 5 s. The
/// server answers in microseconds; the bound only turns a server that is
/// not there into an error instead of a hang.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a command could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the `ipc://` socket file: it is missing, or
    /// left by a server that is gone.
    #[error(
        "nothing listens at {endpoint}: {why} (is the server running, and is this \
         its control port? --endpoint chooses another)"
    )]
    NoSocket {
        /// The spec.
        endpoint: String,
        /// What is there instead.
        why: &'static str,
    },
    /// No reply in time.
    #[error("no reply from {endpoint} within {} ms", .timeout.as_millis())]
    Timeout {
        /// The spec.
        endpoint: String,
        /// The deadline.
        timeout: Duration,
    },
    /// ZeroMQ failed.
    #[error("{endpoint}: {source}")]
    Zmq {
        /// The spec.
        endpoint: String,
        /// Why.
        source: zmq::Error,
    },
}

/// Why a command line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A word after the command is not `key=value`.
    #[error("USAGE: command arg1=val1 arg2=val2 (not key=value: {0:?})")]
    NotKeyValue(String),
}

/// Where the control port of `snapshot`'s server is, seen from here: the
/// server's `control_port`, else the `control_port` setting, else
/// `ipc://run/control`. A relative `ipc://` path is relative to where the
/// server runs — inside its chroot, or its working directory without one —
/// so it is joined to the chroot here (without a chroot it stays relative
/// to this process's directory: run the client where the server runs).
/// Any other spec is used as written.
pub fn endpoint_of(snapshot: &Snapshot) -> String {
    resolve(snapshot.control_port(), &snapshot.server.chroot)
}

/// `spec` as seen from outside a server whose chroot is `chroot`.
pub fn resolve(spec: &str, chroot: &str) -> String {
    match spec.strip_prefix("ipc://") {
        Some(path) if !chroot.is_empty() && !path.starts_with('/') && path != "*" => {
            format!("ipc://{}", Path::new(chroot).join(path).display())
        }
        _ => spec.to_owned(),
    }
}

/// The request for a line typed at the prompt: `command key=value ...`,
/// words separated by white space; `None` for a blank line.
pub fn request_of_line(line: &str) -> Result<Option<Vec<u8>>, LineError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.is_empty() {
        return Ok(None);
    }
    request_of_words(&words).map(Some)
}

/// The request `[command, {key: value, ...}]` for `words`, the command
/// first: each further word is `key=value` (split at its first `=`), and
/// a value that is an integer (`-?[0-9]+`, within 64 bits) is sent as one,
/// as m2sh does; any other value is a string.
pub fn request_of_words<S: AsRef<str>>(words: &[S]) -> Result<Vec<u8>, LineError> {
    let Some((command, args)) = words.split_first() else {
        return Ok(Value::List(vec![Value::String(b""), Value::Dict(Vec::new())]).to_vec());
    };
    let mut pairs = Vec::with_capacity(args.len());
    for word in args {
        let word = word.as_ref();
        let Some((key, value)) = word.split_once('=') else {
            return Err(LineError::NotKeyValue(word.to_owned()));
        };
        let value = match integer(value) {
            Some(n) => Value::Integer(n),
            None => Value::String(value.as_bytes()),
        };
        pairs.push((key.as_bytes(), value));
    }
    Ok(Value::List(vec![
        Value::String(command.as_ref().as_bytes()),
        Value::Dict(pairs),
    ])
    .to_vec())
}

fn integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A REQ socket connected to a control port.
pub struct Session {
    context: zmq::Context,
    socket: Option<zmq::Socket>,
    endpoint: String,
    timeout: Duration,
}

impl Session {
    /// A session with `endpoint`, each reply awaited for up to `timeout`.
    /// An `ipc://` endpoint where nothing listens (no socket file, or one
    /// that refuses connections) is an error now, where ZeroMQ would wait
    /// for a server to appear.
    pub fn connect(endpoint: &str, timeout: Duration) -> Result<Session, ClientError> {
        if let Some(path) = endpoint.strip_prefix("ipc://") {
            let why = match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => None,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("no such socket"),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Some("the socket refuses connections (left by a server that is gone)")
                }
                // Anything else (permissions …) is ZeroMQ's to report.
                Err(_) => None,
            };
            if let Some(why) = why {
                return Err(ClientError::NoSocket {
                    endpoint: endpoint.to_owned(),
                    why,
                });
            }
        }
        let mut session = Session {
            context: zmq::Context::new(),
            socket: None,
            endpoint: endpoint.to_owned(),
            timeout,
        };
        session.socket()?;
        Ok(session)
    }

    /// The spec it talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn zmq_error(&self, source: zmq::Error) -> ClientError {
        ClientError::Zmq {
            endpoint: self.endpoint.clone(),
            source,
        }
    }

    /// The REQ socket, made (and connected) if there is none.
    fn socket(&mut self) -> Result<&zmq::Socket, ClientError> {
        if self.socket.is_none() {
            let made = (|| {
                let socket = self.context.socket(zmq::REQ)?;
                socket.set_linger(0)?;
                socket.connect(&self.endpoint)?;
                Ok(socket)
            })();
            self.socket = Some(made.map_err(|e| self.zmq_error(e))?);
        }
        Ok(self.socket.as_ref().expect("made above"))
    }

    /// Sends `request` and returns the reply. After a timeout the socket
    /// is dropped (a REQ socket that got no reply can send no more) and
    /// the next call connects anew.
    pub fn ask(&mut self, request: &[u8]) -> Result<Vec<u8>, ClientError> {
        let timeout_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let socket = self.socket()?;
        let sent = socket
            .send(request, 0)
            .and_then(|()| socket.poll(zmq::POLLIN, timeout_ms));
        match sent {
            Ok(0) => {
                self.socket = None;
                Err(ClientError::Timeout {
                    endpoint: self.endpoint.clone(),
                    timeout: self.timeout,
                })
            }
            Ok(_) => socket.recv_bytes(0).map_err(|e| self.zmq_error(e)),
            Err(e) => {
                self.socket = None;
                Err(self.zmq_error(e))
            }
        }
    }
}

/// What a reply said, once printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    /// A table.
    Table,
    /// An error: its `code` if it has one (Mongrel2's `status` with an
    /// unknown `what` has none).
    Error(Option<String>),
    /// Not a reply m2sh can print; the reason (m2sh logs it and prints
    /// nothing).
    Invalid(String),
}

/// Prints `reply` to `out` as `m2sh control` does (`display_response`):
/// an error as `ERROR: <error>`; a table of one row as `header:  value`
/// lines; any other table as a line of headers, a line per row (every
/// cell followed by two spaces) and an empty line. Strings are printed as
/// their bytes, integers in decimal, booleans as `true`/`false`, null as
/// `(null)`, a float with six decimals, a list or dict as `NA`.
pub fn display(reply: &[u8], out: &mut dyn Write) -> std::io::Result<Shown> {
    let invalid = |why: &str| Ok(Shown::Invalid(why.to_owned()));
    let Ok((value, _)) = tnetstring::parse_prefix(reply) else {
        return invalid("the reply is not a tnetstring");
    };
    if value.as_dict().is_none() {
        return invalid("the reply is not a dict");
    }
    if let Some(error) = value.get("error") {
        out.write_all(b"ERROR: ")?;
        datum(error, out)?;
        out.write_all(b"\n")?;
        let code = value.get("code").and_then(Value::as_str).map(str::to_owned);
        return Ok(Shown::Error(code));
    }
    let (Some(headers), Some(rows)) = (
        value.get("headers").and_then(Value::as_list),
        value.get("rows").and_then(Value::as_list),
    ) else {
        return invalid("the reply has no headers or rows list");
    };
    if headers.iter().any(|h| h.as_bytes().is_none()) {
        return invalid("a header is not a string");
    }
    if let [row] = rows {
        let Some(cells) = row.as_list().filter(|c| c.len() == headers.len()) else {
            return invalid("the row is not as long as the headers");
        };
        for (header, cell) in headers.iter().zip(cells) {
            datum(header, out)?;
            out.write_all(b":  ")?;
            datum(cell, out)?;
            out.write_all(b"\n")?;
        }
        return Ok(Shown::Table);
    }
    for header in headers {
        datum(header, out)?;
        out.write_all(b"  ")?;
    }
    out.write_all(b"\n")?;
    for row in rows {
        for cell in row.as_list().unwrap_or_default() {
            datum(cell, out)?;
            out.write_all(b"  ")?;
        }
        out.write_all(b"\n")?;
    }
    out.write_all(b"\n")?;
    Ok(Shown::Table)
}

/// m2sh's `print_datum`.
fn datum(value: &Value<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    match value {
        Value::String(s) => out.write_all(s),
        Value::Integer(n) => write!(out, "{n}"),
        Value::Float(f) => write!(out, "{f:.6}"),
        Value::Null => out.write_all(b"(null)"),
        Value::Boolean(b) => write!(out, "{b}"),
        Value::Dict(_) | Value::List(_) => out.write_all(b"NA"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_m2shs_requests() {
        let cases: &[(&str, &[u8])] = &[
            ("help", b"10:4:help,0:}]"),
            ("  status what=net  ", b"26:6:status,13:4:what,3:net,}]"),
            ("kill id=42", b"21:4:kill,10:2:id,2:42#}]"),
            ("kill id=-3", b"21:4:kill,10:2:id,2:-3#}]"),
            ("kill id=12abc", b"24:4:kill,13:2:id,5:12abc,}]"),
            ("kill id=-", b"19:4:kill,9:2:id,1:-,}]"),
            ("status\twhat=tasks", b"28:6:status,15:4:what,5:tasks,}]"),
            ("x a=b=c", b"18:1:x,10:1:a,3:b=c,}]"),
            (
                "kill id=99999999999999999999",
                b"40:4:kill,29:2:id,20:99999999999999999999,}]",
            ),
        ];
        for (line, request) in cases {
            assert_eq!(
                request_of_line(line).unwrap().unwrap(),
                *request,
                "{line:?}"
            );
        }
        assert_eq!(request_of_line(" \t").unwrap(), None);
        assert_eq!(
            request_of_line("status what"),
            Err(LineError::NotKeyValue("what".into()))
        );
    }

    fn shown(reply: &[u8]) -> (String, Shown) {
        let mut out = Vec::new();
        let shown = display(reply, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), shown)
    }

    #[test]
    fn replies_print_as_m2sh_prints_them() {
        // m2sh control's output for these replies of Mongrel2 1.12.2.
        assert_eq!(
            shown(b"52:7:headers,7:4:uuid,]4:rows,21:17:13:m2test-server,]]}"),
            ("uuid:  m2test-server\n".into(), Shown::Table)
        );
        assert_eq!(
            shown(b"110:7:headers,86:2:id,2:fd,4:type,9:last_ping,9:last_read,10:last_write,10:bytes_read,13:bytes_written,]4:rows,0:]}").0,
            "id  fd  type  last_ping  last_read  last_write  bytes_read  bytes_written  \n\n"
        );
        assert_eq!(
            shown(b"145:7:headers,38:2:id,6:system,4:name,5:state,6:status,]4:rows,82:38:1:1#5:false!6:SERVER,7:read fd,4:idle,]36:1:2#4:true!6:fdtask,5:yield,5:ready,]]}").0,
            "id  system  name  state  status  \n1  false  SERVER  read fd  idle  \n2  true  fdtask  yield  ready  \n\n"
        );
        assert_eq!(
            shown(b"259:7:headers,92:4:port,9:bind_addr,4:uuid,6:chroot,10:access_log,9:error_log,8:pid_file,16:default_hostname,]4:rows,141:136:5:16999#9:127.0.0.1,13:m2test-server,0:,24:/tmp/m2c/logs/access.log,23:/tmp/m2c/logs/error.log,25:/tmp/m2c/run/mongrel2.pid,9:localhost,]]}").0,
            "port:  16999\nbind_addr:  127.0.0.1\nuuid:  m2test-server\nchroot:  \n\
             access_log:  /tmp/m2c/logs/access.log\nerror_log:  /tmp/m2c/logs/error.log\n\
             pid_file:  /tmp/m2c/run/mongrel2.pid\ndefault_hostname:  localhost\n"
        );
        assert_eq!(
            shown(b"61:4:code,16:INVALID_ARGUMENT,5:error,22:Invalid argument type.,}"),
            (
                "ERROR: Invalid argument type.\n".into(),
                Shown::Error(Some("INVALID_ARGUMENT".into()))
            )
        );
        assert_eq!(
            shown(b"51:5:error,39:Expected argument what=['net'|'tasks'].,}"),
            (
                "ERROR: Expected argument what=['net'|'tasks'].\n".into(),
                Shown::Error(None)
            )
        );
        assert!(matches!(shown(b"4:help,").1, Shown::Invalid(_)));
        assert!(matches!(shown(b"nonsense").1, Shown::Invalid(_)));
    }

    #[test]
    fn relative_ipc_paths_are_inside_the_chroot() {
        assert_eq!(
            resolve("ipc://run/control", "/var/www"),
            "ipc:///var/www/run/control"
        );
        assert_eq!(resolve("ipc://run/control", "./"), "ipc://./run/control");
        assert_eq!(resolve("ipc://run/control", ""), "ipc://run/control");
        assert_eq!(resolve("ipc:///tmp/c", "/var/www"), "ipc:///tmp/c");
        assert_eq!(
            resolve("tcp://127.0.0.1:5", "/var/www"),
            "tcp://127.0.0.1:5"
        );
    }
}
