//! The ZeroMQ bridge: the only code that touches ZeroMQ sockets.
//!
//! Owns, per handler, the two sockets Mongrel2 binds (PROTOCOL.md §1.1): a
//! PUSH at `send_spec` (requests, round-robin over connected handler
//! processes) and a SUB at `recv_spec` subscribed to `recv_ident`
//! (replies), plus one thread for requests that cannot leave at once.
//!
//! Requests: on the hot path a connection task sends on the handler's PUSH
//! socket itself (see `PushSide`), with no hand-off and no thread wake-up.
//! When that is not possible at once it hands the request to the bridge
//! thread through a [`BridgeHandle`] (a queue plus a wake-up pipe the thread
//! polls alongside the PUSH sockets it is holding requests for).
//!
//! Replies: each SUB socket is read by a task on the runtime (`read_replies`),
//! woken through the socket's `ZMQ_FD`, so a reply reaches its connection
//! task without crossing a thread. Replies are parsed there and their bodies
//! pushed into the addressed connections' outboxes in the [`Registry`];
//! nothing here writes to a client or blocks on one.
//!
//! ZeroMQ's own I/O threads run under `SCHED_BATCH` (`new_context`), so
//! handing them a message never preempts the thread serving connections.
//!
//! No handler connected (Kennel's decision; Mongrel2 waits forever): a
//! request the PUSH socket cannot take is held here until a handler
//! connects or its wait (`connect_wait_ms`) runs out, when the connection
//! is told to answer 503. A reply to a connection that no longer exists is
//! answered with a disconnect notice, as Mongrel2 does. Does not own
//! routing, HTTP or the registry's ids.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kennel_handler::reply::{Body, Reply};
use kennel_handler::request;
use kennel_handler::tnetstring::Value;
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle as TaskHandle;
use tracing::{debug, warn};

use crate::config::{Handler, Protocol, Settings};
use crate::registry::{Outgoing, Pushed, Registry};
use crate::sys::ZmqFd;

/// Replies read from one SUB socket before its task yields, so one chatty
/// handler cannot starve the connections it feeds.
const REPLY_BATCH: usize = 512;

/// How long queued requests may still leave when the bridge shuts down.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// A handler socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
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
    /// Creating or configuring a socket failed.
    #[error("zeromq: {0}")]
    Zmq(#[from] zmq::Error),
    /// The wake-up pipe or the thread could not be made.
    #[error("bridge: {0}")]
    Io(#[from] std::io::Error),
}

enum Command {
    Dispatch {
        handler: usize,
        conn_id: u64,
        message: Vec<u8>,
        wait: Duration,
    },
    /// An encoded disconnect notice that could not leave at once.
    Notice {
        handler: usize,
        message: Vec<u8>,
    },
    Shutdown,
}

struct Waker {
    pipe: UnixStream,
    asleep: AtomicBool,
}

impl Waker {
    fn wake(&self) {
        if self.asleep.swap(false, Ordering::SeqCst) {
            // A full pipe already holds a wake-up; nothing else can fail
            // that the bridge would not notice itself.
            let _ = (&self.pipe).write(&[1]);
        }
    }
}

/// A handler's PUSH socket, shared by the bridge thread and connection
/// tasks. A task sends on it directly (no hand-off, no wake-up) when nothing
/// is held for that handler and nobody else is using the socket; otherwise
/// the request goes through the bridge, which keeps the order. The mutex
/// gives the full memory barrier ZeroMQ asks for when a socket moves
/// between threads; a task only ever `try_lock`s it, so a runtime thread
/// never waits for the bridge.
struct PushSide {
    socket: Mutex<zmq::Socket>,
    /// For disconnect notices: `handler.send_ident` and its protocol.
    send_ident: String,
    protocol: Protocol,
    /// Requests handed to the bridge and not yet sent or expired. While it
    /// is above zero, tasks must not send directly, so one connection's
    /// requests can never overtake each other.
    held: AtomicUsize,
}

impl PushSide {
    /// Sends `message` now if nothing is held for this handler, nobody else
    /// is using the socket and a handler process can take it; `false`
    /// otherwise (then the bridge must take it, to keep the order).
    fn try_send(&self, message: &[u8]) -> bool {
        if self.held.load(Ordering::Acquire) != 0 {
            return false;
        }
        let Ok(socket) = self.socket.try_lock() else {
            return false;
        };
        self.held.load(Ordering::Acquire) == 0 && socket.send(message, zmq::DONTWAIT).is_ok()
    }
}

/// What connection tasks use to reach handlers. Cheap to clone.
#[derive(Clone)]
pub struct BridgeHandle {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    push: Arc<[Arc<PushSide>]>,
}

impl BridgeHandle {
    /// Sends a request message to handler `handler` (an index into the
    /// snapshot's handlers) for connection `conn_id`; if no handler process
    /// takes it within `wait`, the connection gets [`Outgoing::Unavailable`].
    /// The message is copied only when the bridge has to take it over.
    pub fn dispatch(&self, handler: usize, conn_id: u64, message: &[u8], wait: Duration) {
        if let Some(side) = self.push.get(handler) {
            if side.try_send(message) {
                return;
            }
            // No handler ready (EAGAIN), the socket busy, or requests held:
            // the bridge sends it, holds it, or answers 503 in time.
            side.held.fetch_add(1, Ordering::AcqRel);
        }
        self.send(Command::Dispatch {
            handler,
            conn_id,
            message: message.to_vec(),
            wait,
        });
    }

    /// Tells handler `handler` that connection `conn_id` is gone: sent at
    /// once if possible, like a request; otherwise through the bridge,
    /// which lets it wait for a handler for a while.
    pub fn disconnect(&self, handler: usize, conn_id: u64) {
        let Some(side) = self.push.get(handler) else {
            return;
        };
        let mut message = Vec::with_capacity(128);
        request::encode_disconnect(
            &mut message,
            side.protocol,
            side.send_ident.as_bytes(),
            conn_id,
        );
        if !side.try_send(&message) {
            self.send(Command::Notice { handler, message });
        }
    }

    fn send(&self, command: Command) {
        // The receiver lives as long as the bridge thread; after shutdown
        // there is nobody left to tell.
        if self.commands.send(command).is_ok() {
            self.waker.wake();
        }
    }
}

/// The running bridge: its thread and its reply tasks.
pub struct Bridge {
    handle: BridgeHandle,
    thread: Option<JoinHandle<()>>,
    readers: Vec<TaskHandle<()>>,
}

impl Bridge {
    /// Binds every handler's sockets, starts the bridge thread and spawns
    /// one reply task per handler on the current tokio runtime (so this
    /// must be called from within one). Uses `kennel.handler.send_hwm`,
    /// `limits.handler_targets` and `kennel.zeromq.batch_scheduling`.
    pub fn start(
        handlers: &[Handler],
        registry: Arc<Registry>,
        settings: &Settings,
    ) -> Result<Bridge, BridgeError> {
        let send_hwm = settings.kennel_handler_send_hwm;
        let max_targets = settings.limits_handler_targets;
        let context = new_context(settings.kennel_zeromq_batch_scheduling)?;
        let mut links = Vec::with_capacity(handlers.len());
        let mut subs = Vec::with_capacity(handlers.len());
        for handler in handlers {
            let (link, sub) = Link::bind(&context, handler, send_hwm)?;
            links.push(link);
            subs.push(ZmqFd::readable(sub)?);
        }
        let (wake_read, wake_write) = UnixStream::pair()?;
        wake_read.set_nonblocking(true)?;
        wake_write.set_nonblocking(true)?;
        let push: Arc<[Arc<PushSide>]> = links.iter().map(|l: &Link| Arc::clone(&l.push)).collect();
        let (commands, receiver) = mpsc::channel();
        let waker = Arc::new(Waker {
            pipe: wake_write,
            asleep: AtomicBool::new(false),
        });
        let thread_waker = Arc::clone(&waker);
        let thread_registry = Arc::clone(&registry);
        let thread = std::thread::Builder::new()
            .name("kennel-bridge".into())
            .spawn(move || {
                let mut worker = Worker {
                    _context: context,
                    links,
                    registry: thread_registry,
                    receiver,
                    waker: thread_waker,
                    wake_read,
                };
                worker.run();
            })?;
        let handle = BridgeHandle {
            commands,
            waker,
            push,
        };
        let readers = subs
            .into_iter()
            .zip(handlers)
            .enumerate()
            .map(|(index, (sub, handler))| {
                let replies = Replies {
                    handler: index,
                    id: handler.id,
                    registry: Arc::clone(&registry),
                    bridge: handle.clone(),
                    max_targets,
                    ids: Vec::new(),
                };
                tokio::spawn(read_replies(sub, replies))
            })
            .collect();
        Ok(Bridge {
            handle,
            thread: Some(thread),
            readers,
        })
    }

    /// A handle for connection tasks.
    pub fn handle(&self) -> BridgeHandle {
        self.handle.clone()
    }

    /// Stops the thread and closes the sockets (queued requests get a short
    /// linger to leave).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for reader in self.readers.drain(..) {
            reader.abort();
        }
        self.handle.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
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
fn new_context(batch: bool) -> Result<zmq::Context, BridgeError> {
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

struct Pending {
    /// Counted in the link's `held` (a request a task handed over).
    counted: bool,
    conn_id: Option<u64>,
    message: Vec<u8>,
    deadline: Instant,
}

/// One handler's sockets and its held requests.
struct Link {
    id: i64,
    push: Arc<PushSide>,
    pending: VecDeque<Pending>,
}

/// Binds `socket` to `spec`, the handler row's `column`.
fn bind(
    socket: &zmq::Socket,
    handler: &Handler,
    column: &'static str,
    spec: &str,
) -> Result<(), BridgeError> {
    socket.bind(spec).map_err(|source| BridgeError::Bind {
        id: handler.id,
        column,
        spec: spec.to_owned(),
        source,
    })
}

impl Link {
    /// Binds the handler's PUSH and SUB; the SUB goes to its reply task.
    fn bind(
        context: &zmq::Context,
        handler: &Handler,
        send_hwm: i32,
    ) -> Result<(Link, zmq::Socket), BridgeError> {
        let push = context.socket(zmq::PUSH)?;
        push.set_sndhwm(send_hwm)?;
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
        let link = Link {
            id: handler.id,
            push: Arc::new(PushSide {
                socket: Mutex::new(push),
                send_ident: handler.send_ident.clone(),
                protocol: handler.protocol,
                held: AtomicUsize::new(0),
            }),
            pending: VecDeque::new(),
        };
        Ok((link, sub))
    }

    /// A counted request left the bridge (sent, failed or expired).
    fn release(&self, counted: bool) {
        if counted {
            self.push.held.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn socket(&self) -> MutexGuard<'_, zmq::Socket> {
        // A panic while sending cannot leave the socket half-used.
        self.push.socket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends without blocking; `false` if the socket cannot take it now.
    fn try_send(&self, message: &[u8]) -> Result<bool, zmq::Error> {
        match self.socket().send(message, zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

struct Worker {
    _context: zmq::Context,
    links: Vec<Link>,
    registry: Arc<Registry>,
    receiver: Receiver<Command>,
    waker: Arc<Waker>,
    wake_read: UnixStream,
}

impl Worker {
    fn run(&mut self) {
        loop {
            self.waker.asleep.store(true, Ordering::SeqCst);
            if !self.drain_commands() {
                return;
            }
            let timeout = self.poll_timeout();
            let (wake, writable) = match self.poll(timeout) {
                Ok(ready) => ready,
                Err(e) => {
                    warn!(error = %e, "bridge: zmq poll failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            };
            self.waker.asleep.store(false, Ordering::SeqCst);
            if wake {
                let mut sink = [0u8; 256];
                while matches!((&self.wake_read).read(&mut sink), Ok(n) if n > 0) {}
            }
            for i in writable {
                self.flush_pending(i);
            }
            self.expire_pending();
        }
    }

    /// Polls the wake-up pipe and the PUSH sockets holding requests.
    /// Returns (woken, writable links).
    fn poll(&self, timeout: i64) -> Result<(bool, Vec<usize>), zmq::Error> {
        // Only links holding requests poll their PUSH socket; tasks do not
        // use it meanwhile (they see `held` above zero), so holding its lock
        // for the poll blocks nobody.
        let guards: Vec<Option<MutexGuard<'_, zmq::Socket>>> = self
            .links
            .iter()
            .map(|l| (!l.pending.is_empty()).then(|| l.socket()))
            .collect();
        let mut items = Vec::with_capacity(1 + self.links.len());
        items.push(zmq::PollItem::from_fd(
            self.wake_read.as_raw_fd(),
            zmq::POLLIN,
        ));
        for guard in &guards {
            match guard {
                Some(push) => items.push(push.as_poll_item(zmq::POLLOUT)),
                None => items.push(zmq::PollItem::from_fd(-1, zmq::PollEvents::empty())),
            }
        }
        zmq::poll(&mut items, timeout)?;
        let wake = items[0].is_readable();
        let writable = (0..self.links.len())
            .filter(|&i| items[1 + i].is_writable())
            .collect();
        Ok((wake, writable))
    }

    /// Milliseconds until the earliest held item's deadline (-1: none).
    /// Every item counts, not just each queue's front: a disconnect notice
    /// waits 5 s while a request behind it may have a 300 ms wait.
    fn poll_timeout(&self) -> i64 {
        let now = Instant::now();
        self.links
            .iter()
            .flat_map(|l| l.pending.iter())
            .map(|p| p.deadline.saturating_duration_since(now).as_millis() as i64 + 1)
            .min()
            .unwrap_or(-1)
    }

    /// Handles every queued command; `false` on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.receiver.try_recv() {
                Ok(Command::Dispatch {
                    handler,
                    conn_id,
                    message,
                    wait,
                }) => self.send(handler, Some(conn_id), message, wait, true),
                // A notice waits for a handler as long as a request would
                // (5 s is plenty for a restarting handler); it expires
                // silently.
                Ok(Command::Notice { handler, message }) => {
                    self.send(handler, None, message, Duration::from_secs(5), false);
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    fn send(
        &mut self,
        handler: usize,
        conn_id: Option<u64>,
        message: Vec<u8>,
        wait: Duration,
        counted: bool,
    ) {
        let Some(link) = self.links.get_mut(handler) else {
            warn!(handler, "bridge: request for an unknown handler index");
            return;
        };
        if link.pending.is_empty() {
            match link.try_send(&message) {
                Ok(true) => {
                    link.release(counted);
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(handler = link.id, error = %e, "bridge: sending a request failed");
                    link.release(counted);
                    if let Some(id) = conn_id {
                        self.registry.deliver(id, Outgoing::Unavailable);
                    }
                    return;
                }
            }
        }
        link.pending.push_back(Pending {
            counted,
            conn_id,
            message,
            deadline: Instant::now() + wait,
        });
    }

    fn flush_pending(&mut self, handler: usize) {
        let link = &mut self.links[handler];
        while let Some(front) = link.pending.front() {
            match link.try_send(&front.message) {
                Ok(true) => {
                    if let Some(p) = link.pending.pop_front() {
                        link.release(p.counted);
                    }
                }
                Ok(false) => return,
                Err(e) => {
                    warn!(handler = link.id, error = %e, "bridge: sending a held request failed");
                    if let Some(p) = link.pending.pop_front() {
                        link.release(p.counted);
                        if let Some(id) = p.conn_id {
                            self.registry.deliver(id, Outgoing::Unavailable);
                        }
                    }
                }
            }
        }
    }

    fn expire_pending(&mut self) {
        let now = Instant::now();
        for link in &mut self.links {
            // Waits differ (requests, notices), so deadlines are not in
            // queue order: scan all (held queues are short-lived and small).
            let mut kept = VecDeque::with_capacity(link.pending.len());
            for p in std::mem::take(&mut link.pending) {
                if p.deadline <= now {
                    link.release(p.counted);
                    if let Some(id) = p.conn_id {
                        debug!(
                            handler = link.id,
                            conn.id = id,
                            "no handler took the request in time"
                        );
                        self.registry.deliver(id, Outgoing::Unavailable);
                    }
                } else {
                    kept.push_back(p);
                }
            }
            link.pending = kept;
        }
    }
}

/// A handler's reply task: reads its SUB socket until the bridge stops.
///
/// `ZMQ_FD` is edge-like: it only says ZeroMQ has commands to process.
/// So the socket is drained until `EAGAIN`, then `ZMQ_EVENTS` decides:
/// readiness is cleared only when no message is waiting (tokio keeps a
/// wake-up that raced with the clearing).
async fn read_replies(mut sub: AsyncFd<ZmqFd>, mut replies: Replies) {
    loop {
        let mut guard = match sub.readable_mut().await {
            Ok(guard) => guard,
            Err(e) => {
                warn!(handler = replies.id, error = %e, "bridge: waiting for replies failed");
                return;
            }
        };
        let socket = guard.get_inner().socket();
        let mut budget = REPLY_BATCH;
        while budget > 0 {
            let mut message = zmq::Message::new();
            match socket.recv(&mut message, zmq::DONTWAIT) {
                Ok(()) => {
                    budget -= 1;
                    replies.deliver(message);
                }
                Err(zmq::Error::EAGAIN) => break,
                Err(e) => {
                    warn!(handler = replies.id, error = %e, "bridge: receiving a reply failed");
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

/// What a reply task needs to route a handler's replies.
struct Replies {
    /// The handler's index in the snapshot.
    handler: usize,
    /// `handler.id`, for logs.
    id: i64,
    registry: Arc<Registry>,
    /// For disconnect notices, which go out through the bridge thread.
    bridge: BridgeHandle,
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
                    handler = self.id,
                    error = %e,
                    reply = %shown,
                    "bridge: rejected a reply from a handler"
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
            None if notify_dead => self.bridge.disconnect(self.handler, id),
            None => {}
        }
    }

    fn extended(&mut self, ids: &[u64], key: &[u8], value: &Value<'_>) {
        if key != b"ctl" {
            warn!(
                handler = self.id,
                key = %String::from_utf8_lossy(key),
                "bridge: extended reply for an xrequest Kennel does not run; ignored"
            );
            return;
        }
        let item = if value.get(b"cancel").is_some() {
            Outgoing::Cancel
        } else if value.get(b"keep-alive").is_some() {
            Outgoing::KeepAlive
        } else {
            debug!(
                handler = self.id,
                "bridge: ctl reply without an effect here"
            );
            return;
        };
        self.push_all(ids, item);
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
