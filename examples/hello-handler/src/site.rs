//! The example site's routes: which page a request asks for, and the
//! simple, one-reply answers (`/hello`, `/users/<id>`, 404, 426).
//!
//! Owns path matching and the bytes of those responses. Does no I/O: the
//! event loop in `main.rs` sends what these functions build. Streams live
//! in [`crate::stream`], the chat rooms in [`crate::chat`] and
//! [`crate::ws_chat`].

use kennel_handler::client::http_response;
use kennel_handler::Request;

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/hello`: a plain-text greeting.
    Hello,
    /// `/users/<id>`: a small JSON document about user `id`.
    User(u64),
    /// `/stream`: a chunked response sent in several replies.
    Stream,
    /// `/chat` from a browser: the HTML page with the chat client.
    ChatClient,
    /// `/chat` with `Accept: text/event-stream`, or `/chat/listen`: join the
    /// room as a Server-Sent Events listener.
    ChatListen,
    /// `/chat/say`: broadcast a message to every listener.
    ChatSay,
    /// `/ws/chat` as plain HTTP: the WebSocket chat needs an upgrade
    /// (WebSocket requests never get here; see [`crate::ws_chat`]).
    WsChat,
    /// Anything else.
    NotFound,
}

/// Picks the page for a request by its path (and, for `/chat`, its
/// `Accept` header).
pub fn route(req: &Request) -> Page {
    let path = req.path();
    match path {
        b"/hello" | b"/hello/" => Page::Hello,
        b"/stream" | b"/stream/" => Page::Stream,
        b"/chat" | b"/chat/" if wants_event_stream(req) => Page::ChatListen,
        b"/chat" | b"/chat/" => Page::ChatClient,
        b"/chat/listen" => Page::ChatListen,
        b"/chat/say" => Page::ChatSay,
        b"/ws/chat" => Page::WsChat,
        _ => match path.strip_prefix(b"/users/").and_then(parse_user_id) {
            Some(id) => Page::User(id),
            None => Page::NotFound,
        },
    }
}

fn wants_event_stream(req: &Request) -> bool {
    req.header("accept")
        .is_some_and(|accept| accept.contains("text/event-stream"))
}

/// A user id: 1 to 19 ASCII digits (so it always fits a `u64`).
fn parse_user_id(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An HTTP/1.1 response with a `Content-Length`; for a `HEAD` request the
/// body is left out (the length still announces it, as RFC 9110 allows).
pub fn response(req: &Request, status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut bytes = http_response(status, headers, body);
    if req.method() == Some("HEAD") {
        bytes.truncate(bytes.len() - body.len());
    }
    bytes
}

/// `/hello`: a greeting plus what the handler was told about the request.
pub fn hello(req: &Request) -> Vec<u8> {
    let body = format!(
        "Hello from a Kennel handler!\nmethod: {}\npath: {}\nconnection id: {}\n",
        req.method().unwrap_or("?"),
        req.path_str(),
        req.conn_id()
    );
    response(
        req,
        200,
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    )
}

/// `/users/<id>`: a small JSON document about the user.
pub fn user(req: &Request, id: u64) -> Vec<u8> {
    let body = format!("{{\"id\":{id},\"name\":\"user {id}\",\"url\":\"/users/{id}\"}}\n");
    response(
        req,
        200,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

/// A plain-text error page with the status's reason phrase.
pub fn error(req: &Request, status: u16, detail: &str) -> Vec<u8> {
    let body = format!(
        "{status} {}: {detail}\n",
        kennel_handler::client::reason_phrase(status)
    );
    response(
        req,
        status,
        &[("Content-Type", "text/plain; charset=utf-8")],
        body.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use kennel_handler::request::{Protocol, RequestHead};

    fn request(method: &str, path: &str, headers: &[(&[u8], &[u8])]) -> Request {
        let head = RequestHead {
            headers,
            ..RequestHead::local(method.as_bytes(), path.as_bytes())
        };
        Request::from_head(Protocol::Tnetstring, b"S", 3, &head, b"")
    }

    #[test]
    fn routes_by_path() {
        let cases = [
            ("/hello", Page::Hello),
            ("/stream", Page::Stream),
            ("/users/42", Page::User(42)),
            ("/users/0007", Page::User(7)),
            ("/users/", Page::NotFound),
            ("/users/4x", Page::NotFound),
            ("/users/42/", Page::NotFound),
            ("/users/99999999999999999999", Page::NotFound),
            ("/chat", Page::ChatClient),
            ("/chat/listen", Page::ChatListen),
            ("/chat/say", Page::ChatSay),
            ("/chatter", Page::NotFound),
            ("/ws/chat", Page::WsChat),
            ("/ws/chat/x", Page::NotFound),
            ("/", Page::NotFound),
        ];
        for (path, page) in cases {
            assert_eq!(route(&request("GET", path, &[])), page, "{path}");
        }
    }

    #[test]
    fn chat_with_event_stream_accept_listens() {
        let req = request(
            "GET",
            "/chat",
            &[(b"Accept", b"text/event-stream, */*;q=0.1")],
        );
        assert_eq!(route(&req), Page::ChatListen);
    }

    #[test]
    fn head_requests_get_no_body() {
        let get = hello(&request("GET", "/hello", &[]));
        let head = hello(&request("HEAD", "/hello", &[]));
        let text = String::from_utf8(get.clone()).unwrap();
        let (head_part, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(body.starts_with("Hello from a Kennel handler!\nmethod: GET\n"));
        assert_eq!(head.len(), head_part.len() + 4);
        assert!(String::from_utf8(head)
            .unwrap()
            .contains(&format!("Content-Length: {}\r\n", body.len() + 1)));
    }

    #[test]
    fn user_json_names_the_id() {
        let bytes = user(&request("GET", "/users/42", &[]), 42);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"id\":42,\"name\":\"user 42\",\"url\":\"/users/42\"}\n"));
    }
}
