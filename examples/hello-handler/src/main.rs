//! `hello-handler`: the example site's Rust handler.
//!
//! One thread, one [`Connection`] (a PULL socket for requests, a PUB socket
//! for replies), one loop. It serves:
//!
//! - `/hello`: a plain-text greeting with the request's method, path and
//!   connection id;
//! - `/users/<id>`: a small JSON document;
//! - `/stream`: a chunked response sent as six replies over a second,
//!   without blocking other requests ([`stream`]);
//! - `/chat`: a Server-Sent Events room where one reply reaches every
//!   listener ([`chat`]);
//! - `/ws/chat`: the same room over WebSocket: the handler answers the
//!   handshake and every frame, and broadcasts each text message
//!   ([`ws_chat`]);
//! - anything else: 404.
//!
//! It works with Kennel and with Mongrel2 alike: both bind the sockets, so
//! the handler may start before or after the server.
//!
//! ```text
//! hello-handler --send-spec tcp://127.0.0.1:9997 --recv-spec tcp://127.0.0.1:9996
//! ```

mod chat;
mod site;
mod stream;
mod ws_chat;

use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use kennel_handler::websocket::Opcode;
use kennel_handler::{Connection, Request};

use crate::chat::Room;
use crate::site::Page;
use crate::stream::Streams;

/// The example site's Rust handler (serves /hello, /users/<id>, /stream, /chat and /ws/chat).
#[derive(Debug, Parser)]
#[command(name = "hello-handler", version)]
struct Args {
    /// Where the server PUSHes requests (the handler's `send_spec`).
    #[arg(long, default_value = "tcp://127.0.0.1:9997")]
    send_spec: String,
    /// Where the server SUBscribes to replies (the handler's `recv_spec`).
    #[arg(long, default_value = "tcp://127.0.0.1:9996")]
    recv_spec: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = Connection::connect(&args.send_spec, &args.recv_spec)
        .with_context(|| format!("connecting to {} and {}", args.send_spec, args.recv_spec))?;
    eprintln!(
        "hello-handler: requests from {}, replies to {}",
        args.send_spec, args.recv_spec
    );
    Handler::new(conn).run()
}

/// The handler's state: its sockets, the streams in progress, the chat
/// rooms (SSE listeners and WebSocket members).
struct Handler {
    conn: Connection,
    streams: Streams,
    room: Room,
    members: Room,
    next_heartbeat: Instant,
}

impl Handler {
    fn new(conn: Connection) -> Handler {
        Handler {
            conn,
            streams: Streams::default(),
            room: Room::default(),
            members: Room::default(),
            next_heartbeat: Instant::now() + chat::HEARTBEAT,
        }
    }

    /// Waits for a request, but never past the next scheduled step (a
    /// stream's next chunk, the chat heartbeat); then does what is due.
    fn run(mut self) -> anyhow::Result<()> {
        loop {
            let wake = match self.streams.next_due() {
                Some(due) => due.min(self.next_heartbeat),
                None => self.next_heartbeat,
            };
            let timeout = wake.saturating_duration_since(Instant::now());
            match self.conn.recv_timeout(timeout) {
                Ok(Some(req)) => self.handle(&req)?,
                Ok(None) => {}
                // A malformed message is the server's bug, not a reason to stop.
                Err(e) if e.is_protocol() => eprintln!("hello-handler: ignored: {e}"),
                Err(e) => return Err(e).context("receiving a request"),
            }
            let now = Instant::now();
            for step in self.streams.take_due(now) {
                self.conn
                    .deliver(&step.sender, &[step.conn_id], &step.bytes)?;
            }
            if now >= self.next_heartbeat {
                self.broadcast(&self.room, chat::HEARTBEAT_COMMENT)?;
                // Members answer a ping with a pong, so both directions of
                // an idle WebSocket see traffic.
                let ping = kennel_handler::websocket::frame(Opcode::Ping, b"");
                self.broadcast(&self.members, &ping)?;
                self.next_heartbeat = now + chat::HEARTBEAT;
            }
        }
    }

    fn handle(&mut self, req: &Request) -> anyhow::Result<()> {
        if req.is_disconnect() {
            self.streams.cancel(req.sender(), req.conn_id());
            if self.room.leave(req.sender(), req.conn_id()) {
                eprintln!(
                    "hello-handler: conn {} left the chat ({} listening)",
                    req.conn_id(),
                    self.room.len()
                );
            }
            if let Some(log) = ws_chat::disconnect(&mut self.members, req) {
                eprintln!("hello-handler: conn {} /ws/chat: {log}", req.conn_id());
            }
            return Ok(());
        }
        if req.method() == Some("JSON") {
            // Other notices (credits) and JSON-socket messages: not ours.
            return Ok(());
        }
        if ws_chat::is_websocket(req) {
            return self.websocket(req);
        }
        // Whether this request's answer is complete now, so the close
        // convention applies right away (streams close when they end,
        // chat listeners never do).
        let mut answered = true;
        let status = match site::route(req) {
            Page::Hello => self.send(req, 200, &site::hello(req))?,
            Page::User(id) => self.send(req, 200, &site::user(req, id))?,
            Page::NotFound => self.send(req, 404, &site::error(req, 404, "no such page here"))?,
            Page::Stream => match self.streams.start(req, Instant::now()) {
                Ok(first) => {
                    answered = req.method() == Some("HEAD");
                    self.send(req, 200, &first)?
                }
                Err(stream::Busy) => {
                    self.send(req, 503, &site::error(req, 503, "too many streams"))?
                }
            },
            Page::WsChat => {
                let page = site::response(
                    req,
                    426,
                    &[
                        ("Upgrade", "websocket"),
                        ("Content-Type", "text/plain; charset=utf-8"),
                    ],
                    b"426 Upgrade Required: /ws/chat is a WebSocket; the page is /ws-chat.html\n",
                );
                self.send(req, 426, &page)?
            }
            Page::ChatClient => {
                let page = site::response(
                    req,
                    200,
                    &[("Content-Type", "text/html; charset=utf-8")],
                    chat::PAGE.as_bytes(),
                );
                self.send(req, 200, &page)?
            }
            Page::ChatListen => match self.room.join(req.sender(), req.conn_id()) {
                Ok(()) => {
                    answered = false;
                    self.send(req, 200, chat::SSE_HEAD)?
                }
                Err(chat::Full) => {
                    self.send(req, 503, &site::error(req, 503, "the room is full"))?
                }
            },
            Page::ChatSay => match chat::message(req) {
                Ok(text) => {
                    let listeners = self.room.len();
                    self.broadcast(&self.room, &chat::event(&text))?;
                    let plural = if listeners == 1 { "" } else { "s" };
                    let body = format!("sent to {listeners} listener{plural}\n");
                    let ok = site::response(
                        req,
                        200,
                        &[("Content-Type", "text/plain; charset=utf-8")],
                        body.as_bytes(),
                    );
                    self.send(req, 200, &ok)?
                }
                Err(chat::SayError::Missing) => self.send(
                    req,
                    400,
                    &site::error(req, 400, "say what? /chat/say?msg=... or POST a body"),
                )?,
                Err(chat::SayError::TooLong) => {
                    self.send(req, 413, &site::error(req, 413, "message too long"))?
                }
            },
        };
        eprintln!(
            "hello-handler: conn {} {} {} -> {status}",
            req.conn_id(),
            req.method().unwrap_or("?"),
            req.path_str()
        );
        if answered && req.should_close() {
            self.conn.close(req)?;
        }
        Ok(())
    }

    /// Sends `bytes` to the request's connection; returns `status` for the log.
    fn send(&self, req: &Request, status: u16, bytes: &[u8]) -> anyhow::Result<u16> {
        self.conn.reply(req, bytes)?;
        Ok(status)
    }

    /// A WebSocket handshake or message for the WebSocket chat.
    fn websocket(&mut self, req: &Request) -> anyhow::Result<()> {
        let answer = ws_chat::handle(&mut self.members, req);
        for step in answer.steps {
            match step {
                ws_chat::Step::Reply(bytes) => self.conn.reply(req, &bytes)?,
                ws_chat::Step::Broadcast(frame) => self.broadcast(&self.members, &frame)?,
                ws_chat::Step::Close => self.conn.close(req)?,
            }
        }
        eprintln!(
            "hello-handler: conn {} {}: {}",
            req.conn_id(),
            req.path_str(),
            answer.log
        );
        Ok(())
    }

    /// Sends `bytes` to everyone in `room`: one `deliver` per server, and
    /// the library splits long id lists into frames the server accepts.
    fn broadcast(&self, room: &Room, bytes: &[u8]) -> anyhow::Result<()> {
        for (sender, ids) in room.audiences() {
            self.conn.deliver(sender, &ids, bytes)?;
        }
        Ok(())
    }
}
