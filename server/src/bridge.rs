//! The ZeroMQ bridge: the only code that touches ZeroMQ sockets.
//!
//! Owns one thread and, per handler, the two sockets Mongrel2 binds
//! (PROTOCOL.md §1.1): a PUSH at `send_spec` (requests, round-robin over
//! connected handler processes) and a SUB at `recv_spec` subscribed to
//! `recv_ident` (replies). Connection tasks hand requests over through a
//! [`BridgeHandle`] (a queue plus a wake-up pipe the thread polls alongside
//! its sockets; each wake-up drains the queue fully). Replies are parsed
//! here and their bodies pushed into the addressed connections' outboxes in
//! the [`Registry`]; the bridge never writes to a client and never blocks on
//! one. On the hot path a task sends a request on the handler's PUSH socket
//! itself (see `PushSide`), skipping the hand-off and the thread wake-up;
//! the bridge takes over whenever that is not possible at once.
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
use tracing::{debug, warn};

use crate::config::{Handler, Protocol};
use crate::registry::{Outgoing, Pushed, Registry};

/// Replies read from one SUB socket per wake-up before the others get a
/// turn, so one chatty handler cannot starve the rest.
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
    Disconnect {
        handler: usize,
        conn_id: u64,
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
    /// Requests handed to the bridge and not yet sent or expired. While it
    /// is above zero, tasks must not send directly, so one connection's
    /// requests can never overtake each other.
    held: AtomicUsize,
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
    pub fn dispatch(&self, handler: usize, conn_id: u64, message: Vec<u8>, wait: Duration) {
        if let Some(side) = self.push.get(handler) {
            if side.held.load(Ordering::Acquire) == 0 {
                if let Ok(socket) = side.socket.try_lock() {
                    if side.held.load(Ordering::Acquire) == 0
                        && socket.send(&message[..], zmq::DONTWAIT).is_ok()
                    {
                        return;
                    }
                }
            }
            // No handler ready (EAGAIN), the socket busy, or requests held:
            // the bridge sends it, holds it, or answers 503 in time.
            side.held.fetch_add(1, Ordering::AcqRel);
        }
        self.send(Command::Dispatch {
            handler,
            conn_id,
            message,
            wait,
        });
    }

    /// Tells handler `handler` that connection `conn_id` is gone.
    pub fn disconnect(&self, handler: usize, conn_id: u64) {
        self.send(Command::Disconnect { handler, conn_id });
    }

    fn send(&self, command: Command) {
        // The receiver lives as long as the bridge thread; after shutdown
        // there is nobody left to tell.
        if self.commands.send(command).is_ok() {
            self.waker.wake();
        }
    }
}

/// The running bridge thread.
pub struct Bridge {
    handle: BridgeHandle,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Binds every handler's sockets and starts the bridge thread.
    /// `max_targets` is `limits.handler_targets`.
    pub fn start(
        handlers: &[Handler],
        registry: Arc<Registry>,
        send_hwm: i32,
        max_targets: usize,
    ) -> Result<Bridge, BridgeError> {
        let context = zmq::Context::new();
        let mut links = Vec::with_capacity(handlers.len());
        for handler in handlers {
            links.push(Link::bind(&context, handler, send_hwm)?);
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
        let thread = std::thread::Builder::new()
            .name("kennel-bridge".into())
            .spawn(move || {
                let mut worker = Worker {
                    _context: context,
                    links,
                    registry,
                    receiver,
                    waker: thread_waker,
                    wake_read,
                    max_targets,
                };
                worker.run();
            })?;
        Ok(Bridge {
            handle: BridgeHandle {
                commands,
                waker,
                push,
            },
            thread: Some(thread),
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
    send_ident: String,
    protocol: Protocol,
    push: Arc<PushSide>,
    sub: zmq::Socket,
    pending: VecDeque<Pending>,
}

impl Link {
    fn bind(context: &zmq::Context, handler: &Handler, send_hwm: i32) -> Result<Link, BridgeError> {
        let push = context.socket(zmq::PUSH)?;
        push.set_sndhwm(send_hwm)?;
        push.set_linger(SHUTDOWN_LINGER.as_millis() as i32)?;
        push.set_identity(handler.send_ident.as_bytes())?;
        push.bind(&handler.send_spec)
            .map_err(|source| BridgeError::Bind {
                id: handler.id,
                column: "send_spec",
                spec: handler.send_spec.clone(),
                source,
            })?;
        let sub = context.socket(zmq::SUB)?;
        sub.set_linger(0)?;
        // Replies are drained as fast as they arrive; the bound only
        // matters if the bridge thread itself falls behind.
        sub.set_rcvhwm(100_000)?;
        sub.set_subscribe(handler.recv_ident.as_bytes())?;
        sub.bind(&handler.recv_spec)
            .map_err(|source| BridgeError::Bind {
                id: handler.id,
                column: "recv_spec",
                spec: handler.recv_spec.clone(),
                source,
            })?;
        Ok(Link {
            id: handler.id,
            send_ident: handler.send_ident.clone(),
            protocol: handler.protocol,
            push: Arc::new(PushSide {
                socket: Mutex::new(push),
                held: AtomicUsize::new(0),
            }),
            sub,
            pending: VecDeque::new(),
        })
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
    max_targets: usize,
}

impl Worker {
    fn run(&mut self) {
        loop {
            self.waker.asleep.store(true, Ordering::SeqCst);
            if !self.drain_commands() {
                return;
            }
            let timeout = self.poll_timeout();
            let (wake, readable, writable) = match self.poll(timeout) {
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
            for i in readable {
                self.read_replies(i);
            }
            for i in writable {
                self.flush_pending(i);
            }
            self.expire_pending();
        }
    }

    /// Polls the wake-up pipe, every SUB, and the PUSH sockets holding
    /// requests. Returns (woken, readable links, writable links).
    fn poll(&self, timeout: i64) -> Result<(bool, Vec<usize>, Vec<usize>), zmq::Error> {
        // Only links holding requests poll their PUSH socket; tasks do not
        // use it meanwhile (they see `held` above zero), so holding its lock
        // for the poll blocks nobody.
        let guards: Vec<Option<MutexGuard<'_, zmq::Socket>>> = self
            .links
            .iter()
            .map(|l| (!l.pending.is_empty()).then(|| l.socket()))
            .collect();
        let mut items = Vec::with_capacity(1 + 2 * self.links.len());
        items.push(zmq::PollItem::from_fd(
            self.wake_read.as_raw_fd(),
            zmq::POLLIN,
        ));
        for (link, guard) in self.links.iter().zip(&guards) {
            items.push(link.sub.as_poll_item(zmq::POLLIN));
            match guard {
                Some(push) => items.push(push.as_poll_item(zmq::POLLOUT)),
                None => items.push(zmq::PollItem::from_fd(-1, zmq::PollEvents::empty())),
            }
        }
        zmq::poll(&mut items, timeout)?;
        let wake = items[0].is_readable();
        let mut readable = Vec::new();
        let mut writable = Vec::new();
        for i in 0..self.links.len() {
            if items[1 + 2 * i].is_readable() {
                readable.push(i);
            }
            if items[2 + 2 * i].is_writable() {
                writable.push(i);
            }
        }
        Ok((wake, readable, writable))
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
                Ok(Command::Disconnect { handler, conn_id }) => {
                    self.send_disconnect(handler, conn_id);
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

    fn send_disconnect(&mut self, handler: usize, conn_id: u64) {
        let Some(link) = self.links.get(handler) else {
            return;
        };
        let mut message = Vec::with_capacity(96);
        request::encode_disconnect(
            &mut message,
            link.protocol,
            link.send_ident.as_bytes(),
            conn_id,
        );
        // A notice waits for a handler as long as a request would (5 s by
        // default is plenty for a restarting handler); it expires silently.
        self.send(handler, None, message, Duration::from_secs(5), false);
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

    fn read_replies(&mut self, handler: usize) {
        for _ in 0..REPLY_BATCH {
            let message = match self.links[handler].sub.recv_msg(zmq::DONTWAIT) {
                Ok(m) => m,
                Err(zmq::Error::EAGAIN) => return,
                Err(e) => {
                    warn!(handler = self.links[handler].id, error = %e, "bridge: receiving a reply failed");
                    return;
                }
            };
            let bytes = Bytes::copy_from_slice(&message);
            self.deliver(handler, &bytes);
        }
    }

    fn deliver(&mut self, handler: usize, message: &Bytes) {
        let reply = match Reply::parse(message, self.max_targets) {
            Ok(r) => r,
            Err(e) => {
                let shown = String::from_utf8_lossy(&message[..message.len().min(80)]);
                warn!(
                    handler = self.links[handler].id,
                    error = %e,
                    reply = %shown,
                    "bridge: rejected a reply from a handler"
                );
                return;
            }
        };
        let ids: Vec<u64> = reply.ids().collect();
        let item = match reply.body() {
            Body::Data([]) => Outgoing::Close,
            Body::Data(body) => Outgoing::Data(message.slice_ref(body)),
            Body::Extended(ext) => {
                self.extended(handler, &ids, ext.key, &ext.value);
                return;
            }
        };
        for id in ids {
            match self.registry.deliver(id, item.clone()) {
                Some(Pushed::Queued | Pushed::Finished) => {}
                Some(Pushed::Overflowed) => {
                    debug!(
                        conn.id = id,
                        "outbox overflow: dropping a client that does not read"
                    );
                }
                None => self.send_disconnect(handler, id),
            }
        }
    }

    fn extended(&mut self, handler: usize, ids: &[u64], key: &[u8], value: &Value<'_>) {
        if key != b"ctl" {
            warn!(
                handler = self.links[handler].id,
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
                handler = self.links[handler].id,
                "bridge: ctl reply without an effect here"
            );
            return;
        };
        for &id in ids {
            if self.registry.deliver(id, item.clone()).is_none() && item != Outgoing::Cancel {
                self.send_disconnect(handler, id);
            }
        }
    }
}
