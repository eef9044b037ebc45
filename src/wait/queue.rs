//! The local queue of waiters per lock key, in one manager.
//!
//! Waiters on the same key queue in FIFO order; only the head spends Redis
//! round trips. A waiter's place is taken synchronously when it joins
//! ([`KeyQueues::join`]), before its first await: the order of the queue is
//! the order of the calls, whatever order the runtime then polls them in
//! (a burst of calls started in one tick is polled in batches, and a future
//! that ran out of Tokio's cooperative budget is polled again after later
//! ones). A task that releases the lock and asks again joins at the back,
//! so no task of this process starves another. The head is woken by a
//! release of the lock in this process (at once, without a round trip), by
//! a release message from Redis, or by its poll timer.

use crate::notifier::Subscription;
use crate::sync::lock;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Notify;

/// The waiters of one key.
pub(crate) struct KeyQueue {
    /// The places in line, head first: each waiter's number and the signal
    /// that tells it it became the head.
    line: Mutex<Line>,
    /// Signalled when a lock of this key is released in this process.
    pub(crate) released_here: Notify,
    /// While a lock of this key granted in this process is held: until when
    /// at most (send time + TTL). The head then waits instead of asking Redis.
    held_here_until: Mutex<Option<Instant>>,
    /// The release-channel subscriptions (one per server asked: one, or
    /// one per Redlock master), kept from one head to the next.
    subscriptions: Mutex<Vec<Subscription>>,
}

#[derive(Default)]
struct Line {
    next: u64,
    places: VecDeque<(u64, Arc<Notify>)>,
}

/// Proof of being the head of a key's queue (it stays the head until its
/// [`Ticket`] is dropped).
pub(crate) struct Head(());

impl KeyQueue {
    fn new() -> Self {
        KeyQueue {
            line: Mutex::new(Line::default()),
            released_here: Notify::new(),
            held_here_until: Mutex::new(None),
            subscriptions: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn held_here_until(&self) -> Option<Instant> {
        *lock(&self.held_here_until)
    }

    pub(crate) fn set_held_here_until(&self, until: Option<Instant>) {
        *lock(&self.held_here_until) = until;
    }

    /// Takes the subscriptions the previous head left.
    pub(crate) fn take_subscriptions(&self) -> Vec<Subscription> {
        std::mem::take(&mut *lock(&self.subscriptions))
    }

    /// Hands the subscriptions on to the next head.
    pub(crate) fn put_subscriptions(&self, subscriptions: Vec<Subscription>) {
        if !subscriptions.is_empty() {
            *lock(&self.subscriptions) = subscriptions;
        }
    }
}

/// The queues of a manager, one per key that somebody waits for.
#[derive(Default)]
pub(crate) struct KeyQueues {
    map: Mutex<HashMap<String, Arc<KeyQueue>>>,
}

/// A waiter's place in line: leaving (drop) hands the head on to the next
/// waiter, and removes the key's queue once empty, which also drops its
/// subscription (nothing subscribed when nobody waits).
pub(crate) struct Ticket {
    queues: Arc<KeyQueues>,
    key: String,
    number: u64,
    turn: Arc<Notify>,
    pub(crate) queue: Arc<KeyQueue>,
}

impl Ticket {
    /// Whether this waiter is first in line.
    pub(crate) fn is_head(&self) -> bool {
        lock(&self.queue.line)
            .places
            .front()
            .is_some_and(|(n, _)| *n == self.number)
    }

    /// The head's proof, if this waiter is first in line now.
    pub(crate) fn head_now(&self) -> Option<Head> {
        self.is_head().then_some(Head(()))
    }

    /// Waits until this waiter is first in line (FIFO).
    pub(crate) async fn become_head(&self) -> Head {
        loop {
            if self.is_head() {
                return Head(());
            }
            // A turn announced between the check and this wait is stored
            // by the `Notify`, so it is not missed.
            self.turn.notified().await;
        }
    }
}

impl KeyQueues {
    /// Joins the queue of `key`, at the back: the place is taken now.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Ticket {
        let mut map = lock(&self.map);
        let queue = Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(KeyQueue::new())),
        );
        let turn = Arc::new(Notify::new());
        let number = {
            let mut line = lock(&queue.line);
            let number = line.next;
            line.next += 1;
            line.places.push_back((number, Arc::clone(&turn)));
            number
        };
        Ticket {
            queues: Arc::clone(self),
            key: key.to_owned(),
            number,
            turn,
            queue,
        }
    }

    /// A lock of `key` was released in this process: wake its queue's head.
    pub(crate) fn released(&self, key: &str) {
        if let Some(queue) = lock(&self.map).get(key) {
            queue.set_held_here_until(None);
            queue.released_here.notify_one();
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = lock(&self.queues.map);
        let mut line = lock(&self.queue.line);
        let Some(at) = line.places.iter().position(|(n, _)| *n == self.number) else {
            return;
        };
        line.places.remove(at);
        match line.places.front() {
            // The head left: the next waiter's turn.
            Some((_, turn)) if at == 0 => turn.notify_one(),
            Some(_) => {}
            None => {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_follow_the_order_of_joining_and_leaving() {
        let queues = Arc::new(KeyQueues::default());
        let a = queues.join("k");
        let b = queues.join("k");
        let c = queues.join("k");
        assert!(a.is_head() && !b.is_head() && !c.is_head());
        drop(b);
        assert!(a.is_head() && !c.is_head());
        drop(a);
        assert!(c.is_head());
        assert_eq!(lock(&queues.map).len(), 1);
        drop(c);
        assert!(lock(&queues.map).is_empty());
        let d = queues.join("k");
        assert!(d.head_now().is_some());
    }

    #[tokio::test]
    async fn the_next_waiter_is_woken_when_the_head_leaves() {
        let queues = Arc::new(KeyQueues::default());
        let a = queues.join("k");
        let b = queues.join("k");
        let waiting = tokio::spawn(async move {
            b.become_head().await;
            b.is_head()
        });
        tokio::task::yield_now().await;
        drop(a);
        let became = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(matches!(became, Ok(Ok(true))));
    }
}
