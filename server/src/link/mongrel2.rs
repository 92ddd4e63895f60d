//! Mongrel2's handler link: a PUSH socket for requests and a SUB socket for
//! replies, with Mongrel2's bytes (PROTOCOL.md §1.1–§1.6).
//!
//! Owns, per handler (one per distinct `send_spec` + `recv_spec`), the two
//! sockets Mongrel2 binds: a PUSH at `send_spec` (requests, round-robin over
//! the connected handler processes) and a SUB at `recv_spec` subscribed to
//! `recv_ident` (replies); the request encoding; the queue of requests held
//! while no handler process can take them, with their expiry; and the
//! threads and tasks that move them.
//!
//! Requests: on the hot path the connection task's [`Link::dispatch`]
//! encodes into a per-thread buffer and sends on the PUSH socket itself
//! (see `PushSide`), with no hand-off and no thread wake-up. When the
//! socket cannot take it at once, the request is copied to the link's
//! holder thread, which polls the socket and sends it as soon as a handler
//! process can take it, or tells the connection to answer 503 when its wait
//! (`connect_wait_ms`) runs out. The held queue is bounded
//! (`kennel.handler.max_held`); a request beyond it is refused at once.
//! Every held item waits the same time, so the queue is in deadline order
//! and expiry pops only what expired.
//!
//! Replies: the SUB socket is read by a task on the runtime (`read_replies`),
//! woken through its `ZMQ_FD`, so a reply reaches its connection task
//! without crossing a thread. Replies are parsed there and their bodies
//! pushed into the addressed connections' outboxes; nothing here writes to
//! a client or blocks on one. A reply to a connection that no longer exists
//! is answered with a disconnect notice, as Mongrel2 does.
//!
//! ZeroMQ's own I/O threads run under `SCHED_BATCH` (`new_context`), so
//! handing them a message never preempts the thread serving connections.
//!
//! Supervision: the holder thread runs its loop under `catch_unwind`; a
//! panic is logged at error level and the loop restarts (the item being
//! handled is lost, the rest of the queue kept). The reply reader logs a
//! failed wait and retries; after repeated failures it marks the link down,
//! and a down link refuses every request (503) instead of losing it.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kennel_handler::reply::{Body, Reply};
use kennel_handler::request::{self, Protocol, RequestHead};
use kennel_handler::tnetstring::Value;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle as TaskHandle;
use tracing::{debug, error, warn};

use super::{Handoff, Link, LinkId, LinkRequest, Refusal};
use crate::config::{Handler, Settings};
use crate::registry::{Outgoing, Pushed, Registry};
use crate::sys::ZmqFd;

/// Replies read from one SUB socket before its task yields, so one chatty
/// handler cannot starve the connections it feeds.
const REPLY_BATCH: usize = 512;

/// How long queued requests may still leave when the link shuts down.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// Failed waits in a row after which the reply reader gives up and marks
/// the link down (each is followed by a pause of [`READER_RETRY_PAUSE`]).
const READER_RETRIES: u32 = 10;

/// Pause between the reply reader's retries.
const READER_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Headers kept on the stack when encoding a request; more spill to a `Vec`.
const STACK_HEADERS: usize = 64;

/// Largest encoding buffer a runtime thread keeps between requests.
const KEEP_ENCODE_BUFFER: usize = 64 * 1024;

thread_local! {
    /// Each runtime thread encodes requests into one reused buffer (ZeroMQ
    /// copies the message when it is sent, so nothing is allocated here per
    /// request).
    static ENCODE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A handler's sockets could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Binding a handler's endpoint failed.
    #[error("handler {id}: column {column}: cannot bind {spec:?}: {source}")]
    Bind {
        /// `handler.id`.
        id: i64,
        /// `send_spec` or `recv_spec`.
        column: &'static str,
        /// The endpoint.
        spec: String,
        /// ZeroMQ's reason.
        source: zmq::Error,
    },
    /// An `ipc://` endpoint whose directory cannot hold a socket.
    #[error("handler {id}: column {column}: cannot bind {spec:?}: {problem}")]
    Endpoint {
        /// `handler.id`.
        id: i64,
        /// `send_spec` or `recv_spec`.
        column: &'static str,
        /// The endpoint.
        spec: String,
        /// What is wrong with its directory.
        problem: String,
    },
    /// Creating or configuring a socket failed.
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    /// The wake-up pipe or the thread could not be made.
    #[error("handler link: {0}")]
    Io(#[from] std::io::Error),
}

/// What the holder thread is asked to do.
enum Command {
    /// A request the PUSH socket could not take at once (counted in
    /// `PushSide::held`).
    Hold {
        conn_id: u64,
        message: Vec<u8>,
    },
    /// An encoded notice that could not leave at once.
    Notice {
        message: Vec<u8>,
    },
    Shutdown,
}

/// Wakes the holder thread from its poll: a byte on a pipe it polls, sent
/// only when it is (about to be) asleep.
struct Waker {
    pipe: UnixStream,
    asleep: AtomicBool,
}

impl Waker {
    fn wake(&self) {
        if self.asleep.swap(false, Ordering::SeqCst) {
            // A full pipe already holds a wake-up; nothing else can fail
            // that the holder would not notice itself.
            let _ = (&self.pipe).write(&[1]);
        }
    }
}

/// The PUSH socket, shared by the holder thread and connection tasks. A
/// task sends on it directly (no hand-off, no wake-up) when nothing is held
/// and nobody else is using the socket; otherwise the request goes to the
/// holder, which keeps the order. The mutex gives the full memory barrier
/// ZeroMQ asks for when a socket moves between threads; a task only ever
/// `try_lock`s it, so a runtime thread never waits for the holder.
struct PushSide {
    socket: Mutex<zmq::Socket>,
    /// Requests handed to the holder and not yet sent or expired. While it
    /// is above zero, tasks must not send directly, so one connection's
    /// requests can never overtake each other.
    held: AtomicUsize,
}

impl PushSide {
    /// Sends `message` now if nothing is held, nobody else is using the
    /// socket and a handler process can take it; `false` otherwise (then
    /// the holder must take it, to keep the order).
    fn try_send(&self, message: &[u8]) -> bool {
        if self.held.load(Ordering::Acquire) != 0 {
            return false;
        }
        let Ok(socket) = self.socket.try_lock() else {
            return false;
        };
        self.held.load(Ordering::Acquire) == 0 && socket.send(message, zmq::DONTWAIT).is_ok()
    }

    fn lock(&self) -> MutexGuard<'_, zmq::Socket> {
        // A panic while sending cannot leave the socket half-used.
        self.socket.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Mongrel2's PUSH/SUB link for one handler.
pub struct Mongrel2Link {
    id: LinkId,
    handler_id: i64,
    send_ident: String,
    protocol: Protocol,
    push: Arc<PushSide>,
    commands: Mutex<Option<Sender<Command>>>,
    waker: Arc<Waker>,
    /// `kennel.handler.max_held`: the most requests held at once.
    max_held: usize,
    down: Arc<AtomicBool>,
    holder: Mutex<Option<JoinHandle<()>>>,
    reader: Mutex<Option<TaskHandle<()>>>,
}

impl std::fmt::Debug for Mongrel2Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mongrel2Link")
            .field("id", &self.id)
            .field("handler", &self.handler_id)
            .finish_non_exhaustive()
    }
}

impl Mongrel2Link {
    /// Binds the handler's PUSH and SUB sockets in `context`, starts the
    /// holder thread and spawns the reply reader on the current tokio
    /// runtime (so this must be called from within one). Uses
    /// `kennel.handler.send_hwm`, `kennel.handler.max_held` and
    /// `limits.handler_targets`.
    pub fn bind(
        id: LinkId,
        context: &zmq::Context,
        handler: &Handler,
        registry: Arc<Registry>,
        settings: &Settings,
    ) -> Result<Arc<Mongrel2Link>, LinkError> {
        let push = context.socket(zmq::PUSH)?;
        push.set_sndhwm(settings.kennel_handler_send_hwm)?;
        push.set_linger(SHUTDOWN_LINGER.as_millis() as i32)?;
        push.set_identity(handler.send_ident.as_bytes())?;
        bind(&push, handler, "send_spec", &handler.send_spec)?;
        let sub = context.socket(zmq::SUB)?;
        sub.set_linger(0)?;
        // Replies are drained as fast as they arrive; the bound only
        // matters if the reply task itself falls behind.
        sub.set_rcvhwm(100_000)?;
        sub.set_subscribe(handler.recv_ident.as_bytes())?;
        bind(&sub, handler, "recv_spec", &handler.recv_spec)?;
        let sub = ZmqFd::readable(sub)?;

        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let waker = Arc::new(Waker {
            pipe: wake_write,
            asleep: AtomicBool::new(false),
        });
        let push = Arc::new(PushSide {
            socket: Mutex::new(push),
            held: AtomicUsize::new(0),
        });
        let (commands, receiver) = mpsc::channel();
        let down = Arc::new(AtomicBool::new(false));
        let mut holder = Holder {
            handler_id: handler.id,
            push: Arc::clone(&push),
            queue: VecDeque::new(),
            wait: Duration::from_millis(handler.connect_wait_ms),
            max_held: settings.kennel_handler_max_held,
            registry: Arc::clone(&registry),
            receiver,
            waker: Arc::clone(&waker),
            wake_read,
        };
        let holder_down = Arc::clone(&down);
        let thread = std::thread::Builder::new()
            .name("kennel-link".into())
            .spawn(move || {
                holder.supervise();
                holder_down.store(true, Ordering::Release);
            })?;
        let link = Arc::new(Mongrel2Link {
            id,
            handler_id: handler.id,
            send_ident: handler.send_ident.clone(),
            protocol: handler.protocol,
            push,
            commands: Mutex::new(Some(commands)),
            waker,
            max_held: settings.kennel_handler_max_held,
            down: Arc::clone(&down),
            holder: Mutex::new(Some(thread)),
            reader: Mutex::new(None),
        });
        let replies = Replies {
            handler: handler.id,
            registry,
            link: Arc::downgrade(&link),
            max_targets: settings.limits_handler_targets,
            ids: Vec::new(),
        };
        let reader = tokio::spawn(read_replies(sub, replies, down));
        *link.reader.lock().unwrap_or_else(|e| e.into_inner()) = Some(reader);
        Ok(link)
    }

    /// Stops the holder and the reply reader and closes the sockets (held
    /// requests get a short linger to leave).
    pub fn shutdown(&self) {
        if let Some(reader) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            reader.abort();
        }
        self.send(Command::Shutdown);
        self.commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let thread = self.holder.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn send(&self, command: Command) -> bool {
        let commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        // The receiver lives as long as the holder thread; after shutdown
        // there is nobody left to tell.
        let sent = commands.as_ref().is_some_and(|c| c.send(command).is_ok());
        drop(commands);
        if sent {
            self.waker.wake();
        }
        sent
    }

    /// Sends an encoded notice at once if possible, else through the holder.
    fn notice(&self, message: &[u8]) {
        if !self.push.try_send(message) {
            self.send(Command::Notice {
                message: message.to_vec(),
            });
        }
    }
}

impl Link for Mongrel2Link {
    fn id(&self) -> LinkId {
        self.id
    }

    fn handler_id(&self) -> i64 {
        self.handler_id
    }

    fn dispatch(&self, request: &LinkRequest<'_>) -> Handoff {
        if self.down.load(Ordering::Acquire) {
            return Handoff::Refused(Refusal::Down);
        }
        ENCODE_BUFFER.with_borrow_mut(|message| {
            message.clear();
            encode(message, self.protocol, self.send_ident.as_bytes(), request);
            let handoff = self.hand_over(request.conn_id, message);
            if message.capacity() > KEEP_ENCODE_BUFFER {
                *message = Vec::new();
            }
            handoff
        })
    }

    fn encode_headers(&self, request: &LinkRequest<'_>) -> Vec<u8> {
        let mut message = Vec::with_capacity(1024);
        let sender = self.send_ident.as_bytes();
        encode(
            &mut message,
            self.protocol,
            sender,
            &LinkRequest {
                body: b"",
                ..*request
            },
        );
        // `SENDER ID PATH ` before the block, `0:,` (the empty body) after.
        let mut id = Vec::with_capacity(20);
        push_decimal(&mut id, request.conn_id);
        let start = sender.len() + id.len() + request.head.path().len() + 3;
        message.truncate(message.len() - 3);
        message.drain(..start);
        message
    }

    fn dispatch_encoded(&self, conn_id: u64, path: &[u8], headers: &[u8], body: &[u8]) -> Handoff {
        if self.down.load(Ordering::Acquire) {
            return Handoff::Refused(Refusal::Down);
        }
        ENCODE_BUFFER.with_borrow_mut(|message| {
            message.clear();
            message.extend_from_slice(self.send_ident.as_bytes());
            message.push(b' ');
            push_decimal(message, conn_id);
            message.push(b' ');
            message.extend_from_slice(path);
            message.push(b' ');
            message.extend_from_slice(headers);
            kennel_handler::tnetstring::write_string(message, body);
            let handoff = self.hand_over(conn_id, message);
            if message.capacity() > KEEP_ENCODE_BUFFER {
                *message = Vec::new();
            }
            handoff
        })
    }

    fn dispatch_slice(
        &self,
        conn_id: u64,
        path: &[u8],
        offset: u64,
        last: bool,
        data: &[u8],
    ) -> Handoff {
        if self.down.load(Ordering::Acquire) {
            return Handoff::Refused(Refusal::Down);
        }
        let offset = offset.to_string();
        let done: [(&[u8], &[u8]); 2] = [
            (b"UPLOAD_STREAM", offset.as_bytes()),
            (b"UPLOAD_STREAM_DONE", b"1"),
        ];
        let headers = if last { &done[..] } else { &done[..1] };
        let mut message = Vec::with_capacity(64 + path.len() + data.len());
        request::encode_headers_only(
            &mut message,
            self.protocol,
            self.send_ident.as_bytes(),
            conn_id,
            path,
            headers,
            data,
        );
        self.hand_over(conn_id, &message)
    }

    fn disconnect(&self, conn_id: u64) {
        let mut message = Vec::with_capacity(128);
        request::encode_disconnect(
            &mut message,
            self.protocol,
            self.send_ident.as_bytes(),
            conn_id,
        );
        self.notice(&message);
    }

    fn credits(&self, conn_id: u64, bytes: u64) {
        let mut message = Vec::with_capacity(128);
        request::encode_credits(
            &mut message,
            self.protocol,
            self.send_ident.as_bytes(),
            conn_id,
            bytes,
        );
        self.notice(&message);
    }

    fn is_up(&self) -> bool {
        !self.down.load(Ordering::Acquire)
    }

    fn held_now(&self) -> usize {
        self.push.held.load(Ordering::Acquire)
    }
}

impl Mongrel2Link {
    /// Sends an encoded request now, or hands it to the holder.
    fn hand_over(&self, conn_id: u64, message: &[u8]) -> Handoff {
        if self.push.try_send(message) {
            return Handoff::Sent;
        }
        // No handler ready (EAGAIN), the socket busy, or requests held: the
        // holder sends it, holds it, or answers 503 in time; unless the
        // queue is full.
        let held = self.push.held.fetch_add(1, Ordering::AcqRel);
        if held >= self.max_held {
            self.push.held.fetch_sub(1, Ordering::AcqRel);
            return Handoff::Refused(Refusal::QueueFull);
        }
        let command = Command::Hold {
            conn_id,
            message: message.to_vec(),
        };
        if self.send(command) {
            Handoff::Held
        } else {
            self.push.held.fetch_sub(1, Ordering::AcqRel);
            Handoff::Refused(Refusal::Down)
        }
    }
}

/// Encodes `request` as Mongrel2's request message (PROTOCOL.md §1.2) into
/// `out`. Synchronous, so the header list on the stack is never part of a
/// connection's future.
fn encode(out: &mut Vec<u8>, protocol: Protocol, sender: &[u8], request: &LinkRequest<'_>) {
    let head = request.head;
    let empty: (&[u8], &[u8]) = (b"", b"");
    let mut stack = [empty; STACK_HEADERS];
    let mut spilled = Vec::new();
    let mut count = 0;
    for header in head.headers() {
        if count < STACK_HEADERS {
            stack[count] = header;
        } else {
            if spilled.is_empty() {
                spilled.extend_from_slice(&stack);
            }
            spilled.push(header);
        }
        count += 1;
    }
    let headers = if spilled.is_empty() {
        &stack[..count]
    } else {
        &spilled[..]
    };
    // The peer's address as text, on the stack.
    let mut ip_buf = [0u8; 48];
    let peer_ip = {
        let mut cursor = std::io::Cursor::new(&mut ip_buf[..]);
        let _ = write!(cursor, "{}", request.peer.ip());
        let len = cursor.position() as usize;
        &ip_buf[..len]
    };
    let request_head = RequestHead {
        path: head.path(),
        method: request.method.unwrap_or(head.method()),
        version: Some(head.version().as_str().as_bytes()),
        uri: Some(head.uri()),
        query: head.query(),
        fragment: head.fragment(),
        pattern: request.pattern.as_bytes(),
        url_scheme: request.url_scheme.as_bytes(),
        remote_addr: peer_ip,
        headers,
        forwarded_for: request.clobber_forwarded_for.then_some(peer_ip),
        extra: request.extra,
    };
    request::encode(
        out,
        protocol,
        sender,
        request.conn_id,
        &request_head,
        request.body,
    );
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Binds `socket` to `spec`, the handler row's `column`.
fn bind(
    socket: &zmq::Socket,
    handler: &Handler,
    column: &'static str,
    spec: &str,
) -> Result<(), LinkError> {
    if let Err(problem) = super::check_ipc_endpoint(spec) {
        return Err(LinkError::Endpoint {
            id: handler.id,
            column,
            spec: spec.to_owned(),
            problem,
        });
    }
    socket.bind(spec).map_err(|source| LinkError::Bind {
        id: handler.id,
        column,
        spec: spec.to_owned(),
        source,
    })
}

/// A ZeroMQ context whose I/O threads, with `batch`, run under
/// `SCHED_BATCH`.
///
/// Why: a ZeroMQ I/O thread is woken for every message handed to it. On a
/// busy core a normal thread preempts the runtime thread that woke it, so
/// every request crosses threads alone, twice; a batch thread waits until
/// the runtime thread blocks and then moves everything queued in one go. On
/// one shared core (bench/RESULTS.md) this took the handler route from
/// about 57,000 to about 95,000 requests/s. With idle cores it changes
/// nothing: a woken thread that finds a free core runs at once.
///
/// ZeroMQ starts its threads with a context's first socket, and a new
/// thread takes its creator's policy (and name), so a short-lived thread
/// named `kennel-zmq` under `SCHED_BATCH` makes that first socket.
pub fn new_context(batch: bool) -> Result<zmq::Context, LinkError> {
    let context = zmq::Context::new();
    if !batch {
        return Ok(context);
    }
    let starter = context.clone();
    let started = std::thread::Builder::new()
        .name("kennel-zmq".into())
        .spawn(move || {
            if let Err(e) = crate::sys::batch_scheduling() {
                warn!(error = %e, "cannot run ZeroMQ's threads under SCHED_BATCH; going on without");
            }
            starter.socket(zmq::PUSH).map(drop)
        })?
        .join();
    match started {
        Ok(result) => result?,
        Err(_) => warn!("starting ZeroMQ's threads panicked; going on without SCHED_BATCH"),
    }
    Ok(context)
}

/// One item the holder waits to send.
struct Held {
    /// The connection waiting for it; `None` for a notice (counted in
    /// `PushSide::held` only when it is a request).
    conn_id: Option<u64>,
    message: Vec<u8>,
    deadline: Instant,
}

/// The holder thread's state: the requests and notices the PUSH socket
/// could not take at once, oldest first.
struct Holder {
    handler_id: i64,
    push: Arc<PushSide>,
    /// In arrival order, which is deadline order: every item waits `wait`.
    queue: VecDeque<Held>,
    /// The handler's `connect_wait_ms`.
    wait: Duration,
    /// `kennel.handler.max_held`; notices beyond it are dropped (requests
    /// are bounded before they get here).
    max_held: usize,
    registry: Arc<Registry>,
    receiver: Receiver<Command>,
    waker: Arc<Waker>,
    wake_read: UnixStream,
}

/// Why the holder's loop returned.
enum Stop {
    /// Told to, or every sender is gone.
    Shutdown,
}

impl Holder {
    /// Runs the loop, restarting it after a panic (logged at error level).
    /// Returns on shutdown.
    fn supervise(&mut self) {
        loop {
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.run())) {
                Ok(Stop::Shutdown) => return,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    error!(
                        handler = self.handler_id,
                        panic = %what,
                        "the handler link's holder thread panicked; restarting it"
                    );
                }
            }
        }
    }

    fn run(&mut self) -> Stop {
        loop {
            self.waker.asleep.store(true, Ordering::SeqCst);
            if !self.drain_commands() {
                return Stop::Shutdown;
            }
            let timeout = self.poll_timeout();
            let (wake, writable) = match self.poll(timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    warn!(handler = self.handler_id, error = %e, "handler link: zmq poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            self.waker.asleep.store(false, Ordering::SeqCst);
            if wake {
                let mut sink = [0u8; 256];
                while matches!((&self.wake_read).read(&mut sink), Ok(n) if n > 0) {}
            }
            if writable {
                self.flush();
            }
            self.expire();
        }
    }

    /// Polls the wake-up pipe, and the PUSH socket while holding something.
    /// Returns (woken, writable).
    fn poll(&self, timeout: i64) -> Result<(bool, bool), zmq::Error> {
        // Only while holding does the holder poll the PUSH socket; tasks do
        // not use it meanwhile (they see `held` above zero, or only try the
        // lock), so holding its lock for the poll blocks nobody.
        let guard = (!self.queue.is_empty()).then(|| self.push.lock());
        let mut items = [
            zmq::PollItem::from_fd(self.wake_read.as_raw_fd(), zmq::POLLIN),
            zmq::PollItem::from_fd(-1, zmq::PollEvents::empty()),
        ];
        if let Some(push) = &guard {
            items[1] = push.as_poll_item(zmq::POLLOUT);
        }
        zmq::poll(&mut items, timeout)?;
        Ok((items[0].is_readable(), items[1].is_writable()))
    }

    /// Milliseconds until the oldest item's deadline (-1: nothing held).
    fn poll_timeout(&self) -> i64 {
        self.queue.front().map_or(-1, |held| {
            held.deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as i64
                + 1
        })
    }

    /// Handles every queued command; `false` on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.receiver.try_recv() {
                Ok(Command::Hold { conn_id, message }) => self.hold(Some(conn_id), message),
                Ok(Command::Notice { message }) => {
                    if self.queue.len() < self.max_held.saturating_mul(2) {
                        self.hold(None, message);
                    } else {
                        debug!(
                            handler = self.handler_id,
                            "held-request queue full: a disconnect or credit notice is dropped"
                        );
                    }
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Sends at once if nothing is ahead and the socket takes it; else
    /// queues it until its deadline.
    fn hold(&mut self, conn_id: Option<u64>, message: Vec<u8>) {
        if self.queue.is_empty() {
            match self.try_send(&message) {
                Ok(true) => {
                    self.release(conn_id);
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(handler = self.handler_id, error = %e, "handler link: sending a request failed");
                    self.fail(conn_id);
                    return;
                }
            }
        }
        self.queue.push_back(Held {
            conn_id,
            message,
            deadline: Instant::now() + self.wait,
        });
    }

    /// Sends without blocking; `false` if the socket cannot take it now.
    fn try_send(&self, message: &[u8]) -> Result<bool, zmq::Error> {
        match self.push.lock().send(message, zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A held request left (sent, failed or expired): tasks may send
    /// directly again once nothing is held.
    fn release(&self, conn_id: Option<u64>) {
        if conn_id.is_some() {
            self.push.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A request that will never be sent: its connection answers 503.
    fn fail(&self, conn_id: Option<u64>) {
        self.release(conn_id);
        if let Some(id) = conn_id {
            self.registry.deliver(id, Outgoing::Unavailable);
        }
    }

    fn flush(&mut self) {
        while let Some(front) = self.queue.front() {
            match self.try_send(&front.message) {
                Ok(true) => {
                    if let Some(held) = self.queue.pop_front() {
                        self.release(held.conn_id);
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    warn!(handler = self.handler_id, error = %e, "handler link: sending a held request failed");
                    if let Some(held) = self.queue.pop_front() {
                        self.fail(held.conn_id);
                    }
                }
            }
        }
    }

    /// Answers what waited too long: the front of the queue, up to the
    /// first item still in time (the queue is in deadline order).
    fn expire(&mut self) {
        let now = Instant::now();
        while self.queue.front().is_some_and(|held| held.deadline <= now) {
            let Some(held) = self.queue.pop_front() else {
                break;
            };
            if let Some(id) = held.conn_id {
                debug!(
                    handler = self.handler_id,
                    conn.id = id,
                    "no handler took the request in time"
                );
            }
            self.fail(held.conn_id);
        }
    }
}

/// The reply reader: reads the SUB socket until the link stops.
///
/// `ZMQ_FD` is edge-like: it only says ZeroMQ has commands to process.
/// So the socket is drained until `EAGAIN`, then `ZMQ_EVENTS` decides:
/// readiness is cleared only when no message is waiting (tokio keeps a
/// wake-up that raced with the clearing).
async fn read_replies(mut sub: AsyncFd<ZmqFd>, mut replies: Replies, down: Arc<AtomicBool>) {
    let mut failures = 0;
    loop {
        let mut guard = match sub.readable_mut().await {
            Ok(guard) => guard,
            Err(e) => {
                failures += 1;
                if failures >= READER_RETRIES {
                    error!(handler = replies.handler, error = %e,
                        "handler link: cannot read replies; the link is down (requests get 503)");
                    down.store(true, Ordering::Release);
                    return;
                }
                warn!(handler = replies.handler, error = %e, "handler link: waiting for replies failed; retrying");
                tokio::time::sleep(READER_RETRY_PAUSE).await;
                continue;
            }
        };
        failures = 0;
        let socket = guard.get_inner().socket();
        let mut budget = REPLY_BATCH;
        while budget > 0 {
            let mut message = zmq::Message::new();
            match socket.recv(&mut message, zmq::DONTWAIT) {
                Ok(()) => {
                    budget -= 1;
                    let delivered =
                        std::panic::catch_unwind(AssertUnwindSafe(|| replies.deliver(message)));
                    if delivered.is_err() {
                        error!(
                            handler = replies.handler,
                            "handler link: routing a reply panicked; the reply is lost"
                        );
                    }
                }
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => {
                    warn!(handler = replies.handler, error = %e, "handler link: receiving a reply failed");
                    break;
                }
            }
        }
        if budget == 0 {
            // More may be waiting: let the connections write, then go on
            // (readiness is still set, so the next wait returns at once).
            drop(guard);
            tokio::task::yield_now().await;
            continue;
        }
        match socket.get_events() {
            Ok(events) if events.contains(zmq::POLLIN) => {}
            _ => guard.clear_ready(),
        }
    }
}

/// Reply bodies from this size on are not copied out of their ZeroMQ
/// message. Smaller ones are: libzmq may receive a small message into a
/// shared 8 KiB buffer, and keeping the message alive keeps that whole
/// buffer, so a queue of small bodies for a slow client could pin far more
/// memory than its outbox accounts for. At 8 KiB and up a message has its
/// own allocation or at most doubles.
const ZERO_COPY_MIN: usize = 8 * 1024;

/// A received ZeroMQ message as the owner of a [`Bytes`]: a large reply
/// body goes to its connections' outboxes without being copied out of it.
struct ZmqBody(zmq::Message);

impl AsRef<[u8]> for ZmqBody {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// What a reply reader needs to route a handler's replies.
struct Replies {
    /// `handler.id`, for logs.
    handler: i64,
    registry: Arc<Registry>,
    /// For disconnect notices (weak: the link owns this reader).
    link: std::sync::Weak<Mongrel2Link>,
    max_targets: usize,
    /// The current reply's ids (kept for its capacity).
    ids: Vec<u64>,
}

impl Replies {
    /// Routes one reply. A large body is not copied: the outboxes share the
    /// ZeroMQ message it arrived in (see [`ZmqBody`]); a small one is copied
    /// once, whatever the number of ids. The id list goes into a buffer
    /// reused across replies.
    fn deliver(&mut self, message: zmq::Message) {
        let reply = match Reply::parse(&message, self.max_targets) {
            Ok(r) => r,
            Err(e) => {
                let shown = String::from_utf8_lossy(&message[..message.len().min(80)]);
                warn!(
                    handler = self.handler,
                    error = %e,
                    reply = %shown,
                    "handler link: rejected a reply from a handler"
                );
                return;
            }
        };
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        ids.extend(reply.ids());
        let body = match reply.body() {
            Body::Data([]) => None,
            Body::Data(body) => {
                // Where the body lies in the message (it borrows from it).
                let start = body.as_ptr() as usize - message.as_ptr() as usize;
                Some(start..start + body.len())
            }
            Body::Extended(ext) => {
                self.extended(&ids, ext.key, &ext.value);
                self.ids = ids;
                return;
            }
        };
        let item = match body {
            None => Outgoing::Close,
            Some(range) if range.len() < ZERO_COPY_MIN => {
                Outgoing::Data(Bytes::copy_from_slice(&message[range]))
            }
            Some(range) => Outgoing::Data(Bytes::from_owner(ZmqBody(message)).slice(range)),
        };
        self.push_all(&ids, item);
        self.ids = ids;
    }

    /// Queues `item` for every id; a dead id gets a disconnect notice
    /// (except for a cancel, which wanted the connection gone anyway).
    fn push_all(&mut self, ids: &[u64], item: Outgoing) {
        let Some((&last, rest)) = ids.split_last() else {
            return;
        };
        let now_ms = self.registry.now_ms();
        let notify_dead = item != Outgoing::Cancel;
        for &id in rest {
            self.push_one(id, item.clone(), now_ms, notify_dead);
        }
        self.push_one(last, item, now_ms, notify_dead);
    }

    fn push_one(&mut self, id: u64, item: Outgoing, now_ms: u64, notify_dead: bool) {
        match self.registry.deliver_at(id, item, now_ms) {
            Some(Pushed::Queued | Pushed::Finished) => {}
            Some(Pushed::Overflowed) => {
                debug!(
                    conn.id = id,
                    "outbox overflow: dropping a client that does not read"
                );
            }
            None if notify_dead => {
                if let Some(link) = self.link.upgrade() {
                    link.disconnect(id);
                }
            }
            None => {}
        }
    }

    /// An extended reply (PROTOCOL.md §1.5): `ctl` (every key it holds
    /// takes effect: `cancel` wins, `credits` grants upload credits,
    /// `keep-alive` resets the idle timer) or `sendfile` (a file streamed to
    /// the connection; the connection checks it is enabled).
    fn extended(&mut self, ids: &[u64], key: &[u8], value: &Value<'_>) {
        match key {
            b"ctl" => {
                if value.get(b"cancel").is_some() {
                    self.push_all(ids, Outgoing::Cancel);
                    return;
                }
                let mut effect = false;
                if let Some(credits) = value.get(b"credits") {
                    match credits {
                        Value::Integer(n) if *n >= 0 => {
                            self.push_all(ids, Outgoing::Credits(*n as u64));
                        }
                        other => warn!(
                            handler = self.handler,
                            value = ?other,
                            "handler link: ctl credits is not a non-negative number; ignored"
                        ),
                    }
                    effect = true;
                }
                if value.get(b"keep-alive").is_some() {
                    self.push_all(ids, Outgoing::KeepAlive);
                    effect = true;
                }
                if !effect {
                    debug!(
                        handler = self.handler,
                        "handler link: ctl reply without an effect here"
                    );
                }
            }
            b"sendfile" => match value {
                Value::String(path) => {
                    self.push_all(ids, Outgoing::SendFile(Bytes::copy_from_slice(path)));
                }
                _ => warn!(
                    handler = self.handler,
                    "handler link: sendfile reply without a file name; ignored"
                ),
            },
            _ => warn!(
                handler = self.handler,
                key = %String::from_utf8_lossy(key),
                "handler link: extended reply for an xrequest Kennel does not run; ignored"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::thread_policies;

    #[test]
    fn zeromq_threads_run_under_sched_batch() {
        let context = new_context(true).unwrap();
        let policies = thread_policies("kennel-zmq");
        // ZeroMQ's I/O thread and its reaper, at least (other tests may
        // have made contexts too; all of theirs are batch as well).
        assert!(
            policies.len() >= 2,
            "threads named kennel-zmq: {policies:?}"
        );
        assert!(
            policies.iter().all(|&p| p == libc::SCHED_BATCH as u32),
            "{policies:?}"
        );
        drop(context);
    }

    #[test]
    fn with_batch_scheduling_off_zeromq_threads_keep_the_default_policy() {
        // ZeroMQ's threads take the name of the thread that makes the
        // context's first socket: a thread of this test's own.
        let policies = std::thread::Builder::new()
            .name("zmq-plain-test".into())
            .spawn(|| {
                let context = new_context(false).unwrap();
                let socket = context.socket(zmq::PUSH).unwrap();
                let policies = thread_policies("zmq-plain-test");
                drop(socket);
                policies
            })
            .unwrap()
            .join()
            .unwrap();
        // This thread, ZeroMQ's I/O thread and its reaper.
        assert!(policies.len() >= 3, "{policies:?}");
        assert!(
            policies.iter().all(|&p| p == libc::SCHED_OTHER as u32),
            "{policies:?}"
        );
    }
}
