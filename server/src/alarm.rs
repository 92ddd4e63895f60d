//! Deadlines of waiting connections, and the shutdown call to idle ones,
//! kept in one place per server.
//!
//! A waiting connection (idle between requests, or waiting for a handler)
//! needs a timer and a way to hear of shutdown. A tokio `Sleep` and a
//! `CancellationToken` wait live inside the task's future (112 and 72
//! bytes), and every idle connection carries them; at 10,000 connections
//! that is most of their memory. Here a connection keeps an [`Alarm`] (a
//! key and a deadline, 24 bytes) and registers its waker under its
//! deadline in one ordered map; one driver task sleeps until the earliest
//! deadline and wakes whoever is due. [`Alarms::shutdown`] wakes every
//! registered connection at once.
//!
//! Cost: one short lock per wait. An entry moves only when its deadline
//! gets earlier; a later one (an idle timer reset by each message) leaves
//! it where it is, and it rings early once: the connection finds its real
//! deadline not come and registers again. The same spurious wake-up comes
//! for an entry left behind by a connection that went busy (harmless: it
//! polls and waits again).
//! Deadlines while a request is being read or a response written are not
//! kept here; those waits are short and use tokio's timers.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Bits of a key that number entries with the same millisecond: about a
/// million per millisecond before two could share a key.
const SEQUENCE_BITS: u32 = 20;

/// A connection's place in the [`Alarms`]: the key of its entry, while
/// registered.
#[derive(Debug, Default)]
pub struct Alarm {
    key: Option<NonZeroU64>,
}

/// What rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    /// The deadline passed.
    Deadline,
    /// The server is shutting down (only for a connection that said it is
    /// idle).
    Shutdown,
}

/// Every waiting connection's deadline and waker.
#[derive(Debug)]
pub struct Alarms {
    /// Keyed by deadline (milliseconds since `epoch`) in the high bits and a
    /// sequence number in the low ones: ordered by deadline.
    entries: Mutex<BTreeMap<u64, Waker>>,
    epoch: Instant,
    sequence: AtomicU64,
    /// Wakes the driver when an earlier deadline is registered.
    rearm: Notify,
    shutting_down: AtomicBool,
}

impl Default for Alarms {
    fn default() -> Self {
        Alarms {
            entries: Mutex::new(BTreeMap::new()),
            epoch: Instant::now(),
            sequence: AtomicU64::new(0),
            rearm: Notify::new(),
            shutting_down: AtomicBool::new(false),
        }
    }
}

impl Alarms {
    /// An empty set; [`drive`](Self::drive) must run for deadlines to fire.
    pub fn new() -> Alarms {
        Alarms::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Waker>> {
        // Every update is a single insert or remove: poisoning cannot leave
        // the map torn.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `at` in whole milliseconds since the epoch, rounded up (so an alarm
    /// never rings early).
    fn millis(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.epoch);
        let ms = since.as_millis() as u64;
        if since > Duration::from_millis(ms) {
            ms + 1
        } else {
            ms
        }
    }

    fn deadline_of(&self, key: u64) -> Instant {
        self.epoch + Duration::from_millis(key >> SEQUENCE_BITS)
    }

    /// Ready when `deadline` has passed (or, for an `idle` connection, the
    /// server is shutting down); otherwise registers `cx`'s waker under
    /// `deadline`, moving `alarm`'s entry if the deadline got earlier (a
    /// later one keeps the entry: it rings early, and the next poll
    /// registers the real deadline).
    pub fn poll(
        &self,
        alarm: &mut Alarm,
        deadline: Instant,
        idle: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Ring> {
        if idle && self.shutting_down.load(Ordering::Acquire) {
            self.cancel(alarm);
            return Poll::Ready(Ring::Shutdown);
        }
        let ms = self.millis(deadline);
        let mut entries = self.lock();
        match alarm.key {
            // Registered no later than `deadline` and not yet rung: keep it.
            // A deadline that moves later (an active connection's idle
            // timer, reset by every message) costs nothing here; the entry
            // rings early once, and the connection registers afresh.
            Some(key) if key.get() >> SEQUENCE_BITS <= ms => {
                if let Some(waker) = entries.get_mut(&key.get()) {
                    if !waker.will_wake(cx.waker()) {
                        *waker = cx.waker().clone();
                    }
                    return Poll::Pending;
                }
                // It rang: the real deadline may have come too.
            }
            Some(key) => {
                entries.remove(&key.get());
            }
            None => {}
        }
        alarm.key = None;
        if Instant::now() >= deadline {
            return Poll::Ready(Ring::Deadline);
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) & ((1 << SEQUENCE_BITS) - 1);
        // Never zero: the deadline is in the future, so `ms` is at least 1.
        let key = (ms << SEQUENCE_BITS) | sequence;
        let earliest = entries.keys().next().is_none_or(|first| key < *first);
        entries.insert(key, cx.waker().clone());
        drop(entries);
        alarm.key = NonZeroU64::new(key);
        if earliest {
            self.rearm.notify_one();
        }
        // A shutdown that took the entries before this one went in.
        if idle && self.shutting_down.load(Ordering::Acquire) {
            self.cancel(alarm);
            return Poll::Ready(Ring::Shutdown);
        }
        Poll::Pending
    }

    /// Removes `alarm`'s entry, if any (a connection that ends).
    pub fn cancel(&self, alarm: &mut Alarm) {
        if let Some(key) = alarm.key.take() {
            self.lock().remove(&key.get());
        }
    }

    /// Wakes every waiting connection; idle ones then close.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let wakers: Vec<Waker> = std::mem::take(&mut *self.lock()).into_values().collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// How many connections are registered (for tests and metrics).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fires deadlines as they come, for ever: run it as a task.
    pub async fn drive(&self) {
        loop {
            // Whole milliseconds gone, rounded down: a key fires once its
            // millisecond (a deadline rounded up) has fully come.
            let now = Instant::now()
                .saturating_duration_since(self.epoch)
                .as_millis() as u64;
            let (due, next) = {
                let mut entries = self.lock();
                let later = entries.split_off(&((now + 1) << SEQUENCE_BITS));
                let due = std::mem::replace(&mut *entries, later);
                (due, entries.keys().next().copied())
            };
            for waker in due.into_values() {
                waker.wake();
            }
            let rearm = self.rearm.notified();
            match next {
                Some(key) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(self.deadline_of(key)) => {}
                        _ = rearm => {}
                    }
                }
                None => rearm.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    async fn wait(alarms: &Alarms, alarm: &mut Alarm, deadline: Instant, idle: bool) -> Ring {
        std::future::poll_fn(|cx| alarms.poll(alarm, deadline, idle, cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn deadlines_fire_in_order_and_move() {
        let alarms = Arc::new(Alarms::new());
        let driver = tokio::spawn({
            let alarms = Arc::clone(&alarms);
            async move { alarms.drive().await }
        });
        let start = Instant::now();
        let mut a = Alarm::default();
        let mut b = Alarm::default();
        let late = start + Duration::from_secs(30);
        let soon = start + Duration::from_secs(2);
        let (ra, rb) = tokio::join!(
            wait(&alarms, &mut a, late, false),
            wait(&alarms, &mut b, soon, false)
        );
        assert_eq!((ra, rb), (Ring::Deadline, Ring::Deadline));
        assert!(Instant::now() >= late);
        assert!(alarms.is_empty());
        // A moved deadline replaces the old entry.
        let mut c = Alarm::default();
        let first = Instant::now() + Duration::from_secs(60);
        let polled = std::future::poll_fn(|cx| {
            assert!(alarms.poll(&mut c, first, false, cx).is_pending());
            Poll::Ready(())
        });
        polled.await;
        assert_eq!(alarms.len(), 1);
        let second = Instant::now() + Duration::from_secs(1);
        assert_eq!(wait(&alarms, &mut c, second, false).await, Ring::Deadline);
        assert!(alarms.is_empty());
        // A later deadline keeps the entry; it rings at the real one.
        let mut d = Alarm::default();
        let start = Instant::now();
        let early = start + Duration::from_secs(5);
        std::future::poll_fn(|cx| {
            assert!(alarms.poll(&mut d, early, false, cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let later = start + Duration::from_secs(50);
        let key = d.key;
        std::future::poll_fn(|cx| {
            assert!(alarms.poll(&mut d, later, false, cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!((d.key, alarms.len()), (key, 1));
        assert_eq!(wait(&alarms, &mut d, later, false).await, Ring::Deadline);
        assert!(Instant::now() >= later);
        assert!(alarms.is_empty());
        driver.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_wakes_idle_waiters_only() {
        let alarms = Arc::new(Alarms::new());
        let far = Instant::now() + Duration::from_secs(3600);
        let idle = tokio::spawn({
            let alarms = Arc::clone(&alarms);
            async move { wait(&alarms, &mut Alarm::default(), far, true).await }
        });
        tokio::task::yield_now().await;
        alarms.shutdown();
        assert_eq!(idle.await.unwrap(), Ring::Shutdown);
        // A busy connection (not idle) keeps its deadline.
        let mut busy = Alarm::default();
        let polled = std::future::poll_fn(|cx| Poll::Ready(alarms.poll(&mut busy, far, false, cx)));
        assert!(polled.await.is_pending());
    }
}
