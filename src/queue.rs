//! The local queue of waiters per lock key, in one manager.
//!
//! Waiters on the same key queue in FIFO order (a fair `tokio::sync::Mutex`
//! whose guard marks the head); only the head spends Redis round trips. A
//! task that releases the lock and asks again joins at the back, so no task
//! of this process starves another. The head is woken by a release of the
//! lock in this process (at once, without a round trip), by a release
//! message from Redis, or by its poll timer.

use crate::notifier::Subscription;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{Notify, OwnedMutexGuard};

/// The waiters of one key.
pub struct KeyQueue {
    head: Arc<tokio::sync::Mutex<()>>,
    /// Signalled when a lock of this key is released in this process.
    pub released_here: Notify,
    /// While a lock of this key granted in this process is held: until when
    /// at most (send time + TTL). The head then waits instead of asking Redis.
    held_here_until: Mutex<Option<Instant>>,
    /// The release-channel subscription, kept from one head to the next.
    subscription: Mutex<Option<Subscription>>,
    /// The same for Redlock: one subscription per master.
    subscriptions: Mutex<Vec<Subscription>>,
    waiters: Mutex<usize>,
}

impl KeyQueue {
    fn new() -> Self {
        KeyQueue {
            head: Arc::new(tokio::sync::Mutex::new(())),
            released_here: Notify::new(),
            held_here_until: Mutex::new(None),
            subscription: Mutex::new(None),
            subscriptions: Mutex::new(Vec::new()),
            waiters: Mutex::new(0),
        }
    }

    /// Waits (FIFO) until this waiter is the head of the queue.
    pub async fn become_head(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.head).lock_owned().await
    }

    pub fn held_here_until(&self) -> Option<Instant> {
        *lock(&self.held_here_until)
    }

    pub fn set_held_here_until(&self, until: Option<Instant>) {
        *lock(&self.held_here_until) = until;
    }

    /// Takes the shared subscription (the head holds it while it waits).
    pub fn take_subscription(&self) -> Option<Subscription> {
        lock(&self.subscription).take()
    }

    /// Hands the subscription on to the next head.
    pub fn put_subscription(&self, subscription: Option<Subscription>) {
        if subscription.is_some() {
            *lock(&self.subscription) = subscription;
        }
    }
}

impl KeyQueue {
    /// Takes the per-master subscriptions (Redlock).
    pub fn take_subscriptions(&self) -> Vec<Subscription> {
        std::mem::take(&mut *lock(&self.subscriptions))
    }

    /// Hands the per-master subscriptions on to the next head (Redlock).
    pub fn put_subscriptions(&self, subscriptions: Vec<Subscription>) {
        if !subscriptions.is_empty() {
            *lock(&self.subscriptions) = subscriptions;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The queues of a manager, one per key that somebody waits for.
#[derive(Default)]
pub struct KeyQueues {
    map: Mutex<HashMap<String, Arc<KeyQueue>>>,
}

/// A waiter's place: leaving (drop) removes the key's queue once empty,
/// which also drops its subscription (nothing subscribed when nobody waits).
pub struct Ticket {
    queues: Arc<KeyQueues>,
    key: String,
    pub queue: Arc<KeyQueue>,
}

impl KeyQueues {
    /// Joins the queue of `key`.
    pub fn join(self: &Arc<Self>, key: &str) -> Ticket {
        let mut map = lock(&self.map);
        let queue = Arc::clone(
            map.entry(key.to_owned())
                .or_insert_with(|| Arc::new(KeyQueue::new())),
        );
        *lock(&queue.waiters) += 1;
        Ticket {
            queues: Arc::clone(self),
            key: key.to_owned(),
            queue,
        }
    }

    /// Whether somebody in this manager waits for `key`.
    pub fn has(&self, key: &str) -> bool {
        lock(&self.map).contains_key(key)
    }

    /// A lock of `key` was released in this process: wake its queue's head.
    pub fn released(&self, key: &str) {
        if let Some(queue) = lock(&self.map).get(key) {
            queue.set_held_here_until(None);
            queue.released_here.notify_one();
        }
    }

    /// Number of keys somebody waits for (for tests).
    pub fn len(&self) -> usize {
        lock(&self.map).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut map = lock(&self.queues.map);
        let mut waiters = lock(&self.queue.waiters);
        *waiters -= 1;
        if *waiters == 0 {
            map.remove(&self.key);
        }
    }
}
