//! `/chat`: a broadcast room over Server-Sent Events.
//!
//! Owns the set of listening connections, the SSE bytes, reading a message
//! out of a `/chat/say` request, and the browser page. Does no I/O: the
//! event loop sends [`SSE_HEAD`] to a new listener, and one
//! [`event`] to every listener with a single `Connection::deliver` per
//! server ([`Room::audiences`]), which is the point of the example: one
//! reply message, many connections.
//!
//! A listener's response never ends, so it has no `Content-Length` and no
//! chunking: the body runs until the client goes away, and the server's
//! disconnect notice removes the listener ([`Room::leave`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kennel_handler::Request;
use percent_encoding::percent_decode;

/// The most listeners the room holds (default 10,000); a further listener
/// gets 503. Bounds the room's memory and the size of one broadcast.
pub const MAX_LISTENERS: usize = 10_000;

/// The longest message, in bytes as received (default 2 KiB); longer ones
/// get 413. A chat line, not a file upload.
pub const MAX_MESSAGE_BYTES: usize = 2_048;

/// How often listeners get an SSE comment (default 25 s), so that idle
/// connections are not taken for dead by the server's idle killer or by a
/// proxy on the way (Mongrel2's `limits.min_ping` is 120 s).
pub const HEARTBEAT: Duration = Duration::from_secs(25);

/// The response head a listener gets: an event stream with no length.
pub const SSE_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";

/// What [`HEARTBEAT`] sends: an SSE comment, which browsers ignore.
pub const HEARTBEAT_COMMENT: &[u8] = b": keep-alive\n\n";

/// The room is full.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// The listening connections, grouped by the server they belong to (the
/// request's sender), so one broadcast is one reply per server.
#[derive(Debug, Default)]
pub struct Room {
    listeners: BTreeMap<String, BTreeSet<u64>>,
    count: usize,
}

impl Room {
    /// Adds a listener.
    pub fn join(&mut self, sender: &str, conn_id: u64) -> Result<(), Full> {
        if self.count >= MAX_LISTENERS {
            return Err(Full);
        }
        if self
            .listeners
            .entry(sender.to_owned())
            .or_default()
            .insert(conn_id)
        {
            self.count += 1;
        }
        Ok(())
    }

    /// Removes a listener; `true` if it was one.
    pub fn leave(&mut self, sender: &str, conn_id: u64) -> bool {
        let Some(ids) = self.listeners.get_mut(sender) else {
            return false;
        };
        let removed = ids.remove(&conn_id);
        if ids.is_empty() {
            self.listeners.remove(sender);
        }
        if removed {
            self.count -= 1;
        }
        removed
    }

    /// Whether `conn_id` of `sender` is a listener.
    pub fn contains(&self, sender: &str, conn_id: u64) -> bool {
        self.listeners
            .get(sender)
            .is_some_and(|ids| ids.contains(&conn_id))
    }

    /// How many listeners there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Every server with listeners, and their connection ids (ascending).
    pub fn audiences(&self) -> impl Iterator<Item = (&str, Vec<u64>)> {
        self.listeners
            .iter()
            .map(|(sender, ids)| (sender.as_str(), ids.iter().copied().collect()))
    }
}

/// One SSE event carrying `message`. Every line of the message becomes a
/// `data:` line (SSE ends a line at CR, LF or CRLF, so all three split).
pub fn event(message: &str) -> Vec<u8> {
    let mut out = String::with_capacity(message.len() + 16);
    let normalized = message.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out.into_bytes()
}

/// Why a `/chat/say` request carries no usable message.
#[derive(Debug, PartialEq, Eq)]
pub enum SayError {
    /// No `msg`, or only whitespace.
    Missing,
    /// Longer than [`MAX_MESSAGE_BYTES`].
    TooLong,
}

/// The message of a `/chat/say` request: the `msg` query parameter, or for
/// a POST the body (a form's `msg` field, or else the whole body as text).
pub fn message(req: &Request) -> Result<String, SayError> {
    let raw = if req.method() == Some("POST") {
        let form = req
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        if req.body().len() > MAX_MESSAGE_BYTES * 3 {
            return Err(SayError::TooLong);
        }
        // `curl --data 'hi'` says form-urlencoded but sends no field.
        form.then(|| form_field(req.body(), b"msg"))
            .flatten()
            .or_else(|| Some(String::from_utf8_lossy(req.body()).into_owned()))
    } else {
        req.headers()
            .get_bytes("QUERY")
            .and_then(|query| form_field(query, b"msg"))
    };
    let text = raw.ok_or(SayError::Missing)?;
    let text = text.trim_end_matches(['\r', '\n']);
    if text.trim().is_empty() {
        return Err(SayError::Missing);
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(SayError::TooLong);
    }
    Ok(text.to_owned())
}

/// The first value of `name` in `application/x-www-form-urlencoded` bytes.
fn form_field(form: &[u8], name: &[u8]) -> Option<String> {
    form.split(|&b| b == b'&').find_map(|pair| {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        (key == name).then(|| {
            let spaced: Vec<u8> = value
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            percent_decode(&spaced).decode_utf8_lossy().into_owned()
        })
    })
}

/// The page a browser gets for `GET /chat`: it listens with `EventSource`
/// and says with `fetch`, or, without JavaScript, with a plain form.
pub const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Kennel chat</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<h1>Kennel chat</h1>
<p>Open this page in two windows. Every message is one reply from the
handler, delivered by the server to every listening connection.</p>
<ul id="log"></ul>
<form id="say" action="/chat/say" method="get">
  <input name="msg" id="msg" autocomplete="off" placeholder="say something" autofocus>
  <button>Say</button>
</form>
<p id="status">connecting…</p>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
const events = new EventSource("/chat/listen");
events.onopen = () => { status.textContent = "listening"; };
events.onerror = () => { status.textContent = "reconnecting…"; };
events.onmessage = (e) => {
  const li = document.createElement("li");
  li.textContent = e.data;
  log.appendChild(li);
};
document.getElementById("say").onsubmit = async (e) => {
  e.preventDefault();
  const input = document.getElementById("msg");
  if (!input.value.trim()) return;
  await fetch("/chat/say", { method: "POST", body: input.value });
  input.value = "";
};
</script>
<p><a href="/">back</a></p>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::request::{Protocol, RequestHead};

    fn say(method: &str, query: Option<&str>, ctype: Option<&str>, body: &[u8]) -> Request {
        let ctype_header;
        let headers: &[(&[u8], &[u8])] = match ctype {
            Some(t) => {
                ctype_header = [(&b"Content-Type"[..], t.as_bytes())];
                &ctype_header
            }
            None => &[],
        };
        let head = RequestHead {
            path: b"/chat/say",
            method: method.as_bytes(),
            version: Some(b"HTTP/1.1"),
            query: query.map(str::as_bytes),
            pattern: b"/chat",
            headers,
            ..RequestHead::default()
        };
        Request::from_head(Protocol::Json, b"S", 1, &head, body)
    }

    #[test]
    fn message_from_query_form_or_body() {
        let req = say("GET", Some("x=1&msg=hello+there%21&msg=2"), None, b"");
        assert_eq!(message(&req), Ok("hello there!".to_owned()));
        let req = say(
            "POST",
            None,
            Some("application/x-www-form-urlencoded"),
            b"msg=caf%C3%A9",
        );
        assert_eq!(message(&req), Ok("café".to_owned()));
        let req = say("POST", None, Some("text/plain"), b"a+b%20\n");
        assert_eq!(message(&req), Ok("a+b%20".to_owned()));
        let req = say(
            "POST",
            None,
            Some("application/x-www-form-urlencoded"),
            b"plain words",
        );
        assert_eq!(message(&req), Ok("plain words".to_owned()));
    }

    #[test]
    fn bad_messages_are_refused() {
        assert_eq!(
            message(&say("GET", None, None, b"")),
            Err(SayError::Missing)
        );
        assert_eq!(
            message(&say("GET", Some("msg=+%20"), None, b"")),
            Err(SayError::Missing)
        );
        let long = vec![b'x'; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            message(&say("POST", None, None, &long)),
            Err(SayError::TooLong)
        );
        let exact = vec![b'x'; MAX_MESSAGE_BYTES];
        assert!(message(&say("POST", None, None, &exact)).is_ok());
    }

    #[test]
    fn events_split_every_kind_of_line_end() {
        assert_eq!(event("hi"), b"data: hi\n\n");
        assert_eq!(
            event("a\r\nb\rc\nd"),
            b"data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn room_groups_by_sender_and_bounds_itself() {
        let mut room = Room::default();
        room.join("A", 3).unwrap();
        room.join("A", 1).unwrap();
        room.join("A", 1).unwrap();
        room.join("B", 9).unwrap();
        assert_eq!(room.len(), 3);
        assert!(room.contains("A", 3) && room.contains("B", 9));
        assert!(!room.contains("A", 9) && !room.contains("C", 1));
        let audiences: Vec<(&str, Vec<u64>)> = room.audiences().collect();
        assert_eq!(audiences, [("A", vec![1, 3]), ("B", vec![9])]);
        assert!(room.leave("B", 9));
        assert!(!room.leave("B", 9));
        assert!(!room.leave("A", 9));
        assert_eq!(room.audiences().count(), 1);
        for id in room.len() as u64..MAX_LISTENERS as u64 + 10 {
            let _ = room.join("C", id + 100);
        }
        assert_eq!(room.len(), MAX_LISTENERS);
        assert_eq!(room.join("C", 1), Err(Full));
    }
}
