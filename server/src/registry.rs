//! The connection registry: connection ids → outboxes.
//!
//! Owns the id scheme and each connection's outbox (the queue of what the
//! handler links deliver to it). A link's reply reader (or its holder
//! thread, for a 503) looks ids up here and pushes; the connection task
//! drains its own outbox and writes to its socket. Does not own sockets,
//! routing or the protocol.
//!
//! Ids are assigned lazily, the first time a connection sends something to
//! a handler (as Mongrel2 does), from a 64-bit counter that never wraps in
//! practice, so an id is never reused while a reply could be in flight: a
//! late reply to a closed connection finds nothing and is answered with a
//! disconnect notice.
//!
//! The map is sharded by id so that the links and many connection tasks
//! rarely contend; no lock is held across an await, and none is held while
//! another is taken.
//!
//! Backpressure (PROTOCOL.md, Kennel's decisions): an outbox is bounded in
//! bytes, not messages, and the bound is enforced only against a client
//! that is not draining it. A connection whose queue is over
//! [`OutboxLimits::max_bytes`] is dropped if it has not written anything
//! for [`OutboxLimits::stall`]; a connection that keeps writing may queue
//! up to [`OutboxLimits::hard_max_bytes`], so memory stays bounded even for
//! a fast reader of a faster handler.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::link::{LinkId, LinkIds};

/// How many shards the id map has: enough that the links and the
/// connection tasks of a 2–16 core machine seldom meet on one lock.
const SHARDS: usize = 64;

/// What a link hands a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// Bytes to write verbatim (a handler's reply body).
    Data(Bytes),
    /// Close after everything queued before it is written (an empty reply).
    Close,
    /// Drop the connection now, without a disconnect notice (`ctl cancel`).
    Cancel,
    /// No handler took the request in time: answer 503 with `Retry-After`.
    Unavailable,
    /// The handler asks to keep the connection (`ctl keep-alive`): reset
    /// its idle timer.
    KeepAlive,
    /// `ctl credits`: the handler takes this many more bytes of a streamed
    /// upload.
    Credits(u64),
    /// The `sendfile` extended reply: stream this file (a path as the
    /// handler wrote it) as the next bytes of the handler's response.
    SendFile(Bytes),
    /// The outbox overflowed (slow client): drop the connection now.
    Overflow,
    /// The control port's `kill`: drop the connection now; the handlers it
    /// used get the disconnect notice (Mongrel2 sends none, see
    /// `docs/control-port.md`).
    Kill,
}

/// The outbox bounds, from settings.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Queued bytes above which a stalled connection is dropped
    /// (`kennel.outbox.max_bytes`, default 4 MiB: several seconds of a
    /// fast stream, far more than one response).
    pub max_bytes: usize,
    /// Queued bytes above which any connection is dropped, draining or
    /// not (8 × `max_bytes`): the memory bound.
    pub hard_max_bytes: usize,
    /// How long without a successful write makes a connection "stalled"
    /// (`kennel.outbox.stall_ms`, default 2000 ms).
    pub stall: Duration,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits::new(4 * 1024 * 1024, Duration::from_millis(2000))
    }
}

impl OutboxLimits {
    /// Limits with the hard bound at 8 × `max_bytes`.
    pub fn new(max_bytes: usize, stall: Duration) -> Self {
        OutboxLimits {
            max_bytes,
            hard_max_bytes: max_bytes.saturating_mul(8),
            stall,
        }
    }
}

/// Queued items: boxed, so an idle outbox holds one pointer and no
/// buffer (the box goes when the queue empties).
#[derive(Debug, Default)]
// Boxed on purpose: an idle outbox holds a pointer, not a deque header.
#[allow(clippy::box_collection)]
struct Items(Option<Box<VecDeque<Outgoing>>>);

impl Items {
    fn queue(&mut self) -> &mut VecDeque<Outgoing> {
        self.0.get_or_insert_with(Default::default)
    }

    fn push_back(&mut self, item: Outgoing) {
        self.queue().push_back(item);
    }

    fn push_front(&mut self, item: Outgoing) {
        self.queue().push_front(item);
    }

    fn pop_front(&mut self) -> Option<Outgoing> {
        let queue = self.0.as_mut()?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.0 = None;
        }
        item
    }

    fn clear(&mut self) {
        self.0 = None;
    }

    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn retain(&mut self, keep: impl FnMut(&Outgoing) -> bool) {
        if let Some(queue) = &mut self.0 {
            queue.retain(keep);
            if queue.is_empty() {
                self.0 = None;
            }
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Outgoing> {
        self.0.iter().flat_map(|q| q.iter())
    }
}

#[derive(Debug, Default)]
struct Queue {
    items: Items,
    bytes: usize,
    /// Set once a terminal item (close, cancel, overflow) is queued:
    /// nothing is queued after it.
    finished: bool,
    /// The connection task, when it waits for something to be queued.
    waker: Option<Waker>,
    /// The links the connection sent requests to (told when it goes).
    links: LinkIds,
}

/// One registered connection's outbox.
#[derive(Debug)]
pub struct Outbox {
    id: u64,
    queue: Mutex<Queue>,
    /// Milliseconds since the registry's epoch of the last successful write.
    last_write_ms: AtomicU64,
    /// Set when the connection must go now (cancel or overflow), so a task
    /// blocked writing to its client can notice without reaching the item.
    aborted: AtomicU8,
}

const NOT_ABORTED: u8 = 0;
const ABORT_CANCEL: u8 = 1;
const ABORT_OVERFLOW: u8 = 2;
const ABORT_KILL: u8 = 3;

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// The connection is already finishing; the item was discarded.
    Finished,
    /// The queue overflowed: the connection is being dropped.
    Overflowed,
}

impl Outbox {
    /// The connection id.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue torn
        // (every update is a single push or pop), so poisoning is ignored.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item for the connection (called by a link).
    pub fn push(&self, item: Outgoing, limits: &OutboxLimits, now_ms: u64) -> Pushed {
        let mut q = self.lock();
        if q.finished {
            return Pushed::Finished;
        }
        let result = match item {
            Outgoing::Data(ref data) => {
                // What is already queued decides, not this item: one reply
                // of any size is taken (it is already in memory, as its
                // ZeroMQ message), and a client that reads gets all of it.
                let queued = q.bytes;
                let stalled = now_ms.saturating_sub(self.last_write_ms.load(Ordering::Relaxed))
                    > limits.stall.as_millis() as u64;
                if queued > limits.hard_max_bytes || (queued > limits.max_bytes && stalled) {
                    self.aborted.store(ABORT_OVERFLOW, Ordering::Release);
                    q.items.clear();
                    q.bytes = 0;
                    q.items.push_back(Outgoing::Overflow);
                    q.finished = true;
                    Pushed::Overflowed
                } else {
                    q.bytes = queued + data.len();
                    q.items.push_back(item);
                    Pushed::Queued
                }
            }
            Outgoing::Close | Outgoing::Cancel | Outgoing::Overflow | Outgoing::Kill => {
                if item == Outgoing::Cancel {
                    self.aborted.store(ABORT_CANCEL, Ordering::Release);
                    q.items.clear();
                    q.bytes = 0;
                }
                if item == Outgoing::Kill {
                    self.aborted.store(ABORT_KILL, Ordering::Release);
                    q.items.clear();
                    q.bytes = 0;
                }
                q.items.push_back(item);
                q.finished = true;
                Pushed::Queued
            }
            Outgoing::Unavailable
            | Outgoing::KeepAlive
            | Outgoing::Credits(_)
            | Outgoing::SendFile(_) => {
                q.items.push_back(item);
                Pushed::Queued
            }
        };
        let waker = q.waker.take();
        drop(q);
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Takes the oldest queued item (called by the connection task). The
    /// queue's buffer is given back once it is empty, so an idle
    /// connection's outbox holds no allocation.
    pub fn pop(&self) -> Option<Outgoing> {
        let mut q = self.lock();
        let item = q.items.pop_front();
        if let Some(Outgoing::Data(data)) = &item {
            q.bytes = q.bytes.saturating_sub(data.len());
        }
        item
    }

    /// Puts `item` back at the front (the connection could not write it
    /// yet: Kennel's own response comes first).
    pub fn unshift(&self, item: Outgoing) {
        let mut q = self.lock();
        if let Outgoing::Data(data) = &item {
            q.bytes += data.len();
        }
        q.items.push_front(item);
    }

    /// Keeps only the queued items for which `keep` is true, in order.
    pub fn retain(&self, keep: impl FnMut(&Outgoing) -> bool) {
        let mut q = self.lock();
        q.items.retain(keep);
        q.bytes = q
            .items
            .iter()
            .map(|i| match i {
                Outgoing::Data(d) => d.len(),
                _ => 0,
            })
            .sum();
    }

    /// Notes that the connection sent a request to `link`.
    pub fn used(&self, link: LinkId) {
        self.lock().links.add(link);
    }

    /// The links the connection sent requests to, first used first.
    pub fn links(&self) -> Vec<LinkId> {
        self.lock().links.as_slice().to_vec()
    }

    /// The link the connection used last.
    pub fn last_link(&self) -> Option<LinkId> {
        self.lock().links.as_slice().last().copied()
    }

    /// Whether anything is queued.
    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// Ready once something is queued; otherwise the task is woken when
    /// something is (one waiter: the connection's own task).
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        if !q.items.is_empty() {
            return Poll::Ready(());
        }
        register(&mut q.waker, cx);
        Poll::Pending
    }

    /// Waits until something is queued.
    pub async fn ready(&self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }

    /// Ready with the reason once the connection must be dropped now
    /// ([`aborted`](Self::aborted)); otherwise woken at the next push.
    pub fn poll_abort(&self, cx: &mut Context<'_>) -> Poll<Outgoing> {
        if let Some(reason) = self.aborted() {
            return Poll::Ready(reason);
        }
        let mut q = self.lock();
        register(&mut q.waker, cx);
        drop(q);
        // An abort between the check and the registration is not missed.
        match self.aborted() {
            Some(reason) => Poll::Ready(reason),
            None => Poll::Pending,
        }
    }

    /// Whether the connection must be dropped now, and why:
    /// [`Outgoing::Cancel`], [`Outgoing::Overflow`] or [`Outgoing::Kill`].
    pub fn aborted(&self) -> Option<Outgoing> {
        match self.aborted.load(Ordering::Acquire) {
            ABORT_CANCEL => Some(Outgoing::Cancel),
            ABORT_OVERFLOW => Some(Outgoing::Overflow),
            ABORT_KILL => Some(Outgoing::Kill),
            _ => None,
        }
    }

    /// Records a successful write to the client.
    pub fn wrote(&self, now_ms: u64) {
        self.last_write_ms.store(now_ms, Ordering::Relaxed);
    }
}

/// Keeps `cx`'s waker in `slot` (cloned only when it is another task's).
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// One shard of the id map.
type Shard = Mutex<HashMap<u64, Arc<Outbox>>>;

/// Connection ids → outboxes, shared by the links and connection tasks.
#[derive(Debug)]
pub struct Registry {
    shards: Box<[Shard]>,
    next_id: AtomicU64,
    epoch: Instant,
    limits: OutboxLimits,
}

impl Registry {
    /// An empty registry whose outboxes use `limits`.
    pub fn new(limits: OutboxLimits) -> Registry {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            // Id 0 is never used: some handler libraries treat it as "none".
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
            limits,
        }
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Outbox>>> {
        self.shards[(id % SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The outbox limits.
    pub fn limits(&self) -> &OutboxLimits {
        &self.limits
    }

    /// Milliseconds since the registry was made (the clock for
    /// [`Outbox::push`] and [`Outbox::wrote`]).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a new connection and returns its outbox.
    pub fn register(&self) -> Arc<Outbox> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let outbox = Arc::new(Outbox {
            id,
            queue: Mutex::new(Queue::default()),
            last_write_ms: AtomicU64::new(self.now_ms()),
            aborted: AtomicU8::new(NOT_ABORTED),
        });
        self.shard(id).insert(id, Arc::clone(&outbox));
        outbox
    }

    /// Forgets a connection; later replies to its id find nothing.
    pub fn unregister(&self, id: u64) {
        self.shard(id).remove(&id);
    }

    /// The outbox of a live connection.
    pub fn get(&self, id: u64) -> Option<Arc<Outbox>> {
        self.shard(id).get(&id).cloned()
    }

    /// Queues an item for connection `id`; `None` if there is no such
    /// connection.
    pub fn deliver(&self, id: u64, item: Outgoing) -> Option<Pushed> {
        self.deliver_at(id, item, self.now_ms())
    }

    /// [`deliver`](Self::deliver) with the clock already read (`now_ms`),
    /// for one item going to many connections.
    pub fn deliver_at(&self, id: u64, item: Outgoing, now_ms: u64) -> Option<Pushed> {
        let outbox = self.get(id)?;
        Some(outbox.push(item, &self.limits, now_ms))
    }

    /// How many connections are registered.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(outbox: &Outbox) -> Vec<Outgoing> {
        std::iter::from_fn(|| outbox.pop()).collect()
    }

    fn data(n: usize) -> Outgoing {
        Outgoing::Data(Bytes::from(vec![b'x'; n]))
    }

    #[test]
    fn ids_are_unique_and_lookups_follow_registration() {
        let reg = Registry::new(OutboxLimits::default());
        let a = reg.register();
        let b = reg.register();
        assert_ne!(a.id(), b.id());
        assert!(a.id() >= 1);
        assert_eq!(reg.len(), 2);
        assert!(reg.get(a.id()).is_some());
        reg.unregister(a.id());
        assert!(reg.get(a.id()).is_none());
        assert_eq!(reg.deliver(a.id(), data(1)), None);
        assert_eq!(reg.deliver(b.id(), data(1)), Some(Pushed::Queued));
    }

    #[test]
    fn close_comes_after_queued_data_and_nothing_after_it() {
        let reg = Registry::new(OutboxLimits::default());
        let a = reg.register();
        reg.deliver(a.id(), data(3));
        reg.deliver(a.id(), Outgoing::Close);
        assert_eq!(reg.deliver(a.id(), data(1)), Some(Pushed::Finished));
        let out = drain(&a);
        assert_eq!(out, vec![data(3), Outgoing::Close]);
    }

    #[test]
    fn kill_discards_what_is_queued_and_aborts() {
        let reg = Registry::new(OutboxLimits::default());
        let a = reg.register();
        reg.deliver(a.id(), data(3));
        assert_eq!(reg.deliver(a.id(), Outgoing::Kill), Some(Pushed::Queued));
        assert_eq!(a.aborted(), Some(Outgoing::Kill));
        assert_eq!(reg.deliver(a.id(), data(1)), Some(Pushed::Finished));
        assert_eq!(drain(&a), vec![Outgoing::Kill]);
    }

    #[test]
    fn cancel_discards_what_is_queued() {
        let reg = Registry::new(OutboxLimits::default());
        let a = reg.register();
        reg.deliver(a.id(), data(3));
        reg.deliver(a.id(), Outgoing::Cancel);
        let out = drain(&a);
        assert_eq!(out, vec![Outgoing::Cancel]);
    }

    #[test]
    fn a_stalled_connection_overflows_but_a_draining_one_does_not() {
        let limits = OutboxLimits::new(100, Duration::from_millis(50));
        let reg = Registry::new(limits);
        let a = reg.register();
        // Draining (wrote just now): may go past max_bytes up to the hard bound.
        a.wrote(reg.now_ms());
        for _ in 0..8 {
            assert_eq!(a.push(data(100), &limits, reg.now_ms()), Pushed::Queued);
        }
        // 800 queued: the hard bound is reached, not passed; one more is taken.
        assert_eq!(a.push(data(200), &limits, reg.now_ms()), Pushed::Queued);
        // Past the hard bound (1000 queued): dropped even though it drains.
        assert_eq!(a.push(data(1), &limits, reg.now_ms()), Pushed::Overflowed);
        let out = drain(&a);
        assert_eq!(out, vec![Outgoing::Overflow]);

        // Stalled: no write for longer than `stall`.
        let b = reg.register();
        let later = reg.now_ms() + 1000;
        assert_eq!(b.push(data(100), &limits, later), Pushed::Queued);
        assert_eq!(b.push(data(1), &limits, later), Pushed::Queued);
        assert_eq!(b.push(data(1), &limits, later), Pushed::Overflowed);
    }

    #[test]
    fn one_reply_of_any_size_is_taken_whole() {
        let limits = OutboxLimits::new(100, Duration::from_millis(50));
        let reg = Registry::new(limits);
        let a = reg.register();
        // Stalled, and fifty times the hard bound: still one reply, taken.
        let later = reg.now_ms() + 1000;
        assert_eq!(a.push(data(40_000), &limits, later), Pushed::Queued);
        let out = drain(&a);
        assert_eq!(out, vec![data(40_000)]);
        // Drained: the next one is taken too.
        assert_eq!(a.push(data(40_000), &limits, later), Pushed::Queued);
    }

    #[tokio::test]
    async fn a_push_wakes_the_waiting_connection() {
        let reg = Arc::new(Registry::new(OutboxLimits::default()));
        let a = reg.register();
        let id = a.id();
        let reg2 = Arc::clone(&reg);
        let pusher = std::thread::spawn(move || reg2.deliver(id, Outgoing::Close));
        a.ready().await;
        pusher.join().unwrap();
        let out = drain(&a);
        assert_eq!(out, vec![Outgoing::Close]);
    }
}
