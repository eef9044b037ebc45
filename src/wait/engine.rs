//! The one waiting loop: a turn in the local queue, attempts, release
//! messages, TTL hints, patience and stops, the same for every backend.
//!
//! A backend says what one attempt is by implementing [`Attempter`] (the
//! single-server backend sends one script to one server; Redlock sends it to
//! every master and counts the votes), and how it wants to be woken by a
//! [`Policy`]. [`wait_for_grant`] does the rest:
//!
//! 1. waits for its turn in this process's queue of the key (only the head
//!    spends round trips; with limited retries, a waiter whose budget ran
//!    out while queued makes its last attempt itself);
//! 2. takes over the release subscriptions the previous head kept;
//! 3. while a lock of the key granted here is held, waits for its release
//!    here rather than ask Redis;
//! 4. attempts; a grant hands the subscriptions and the turn on;
//! 5. a refusal gives up once the patience is spent (`timeout`, or
//!    `maxRetries` attempts over `maxRetries × retryDelay`);
//! 6. subscribes after the first refusal, then tries again at once (a
//!    release between the refusal and the subscription was announced to
//!    nobody);
//! 7. waits for the first of: `retryDelay`, the holder's TTL hint, a release
//!    message, a release in this process, the deadline, a stop.
//!
//! A stop (close or abort) ends the wait with its error, after the
//! attempter's [`Attempter::stopped`] cleanup.

use crate::clock;
use crate::error::Result;
use crate::notifier::Subscription;
use crate::options::{Patience, Retries};
use crate::wait::queue::{Head, KeyQueue, Ticket};
use crate::wait::stops::{sleep_until, Stops};
use futures_util::future::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one attempt gave.
pub(crate) enum Outcome<W> {
    /// Granted: what the backend needs to finish the grant, and until when
    /// at most the lock is held (for the waiters of this process).
    Granted { won: W, held_until: Instant },
    /// Refused. `hint`: when the holder's TTL runs out, if known. `jitter`:
    /// a split vote's random back-off, which replaces `retryDelay` and is
    /// not cut short by release messages.
    Refused {
        hint: Option<Duration>,
        jitter: Option<Duration>,
    },
}

/// An acquire's attempts, as the engine sees them. One value per acquire:
/// it keeps whatever per-acquire state the backend needs (a lock id, the
/// connection of the last attempt).
pub(crate) trait Attempter {
    /// What a grant carries back to the backend.
    type Won;

    /// One attempt. A stop while it is in flight ends it with the stop's
    /// error, after the attempter undid whatever it may have taken.
    async fn attempt(&mut self, stops: &mut Stops) -> Result<Outcome<Self::Won>>;

    /// Subscribes to the key's release messages (best effort: none, and the
    /// waiter polls).
    async fn subscribe(&mut self) -> Vec<Subscription>;

    /// After giving up (patience spent): leaves what the attempts left
    /// behind (a fair-queue entry, say).
    async fn give_up(&mut self);

    /// After a stop outside an attempt: the same cleanup.
    async fn stopped(&mut self);
}

/// How a backend wants to be woken.
pub(crate) struct Policy<'a> {
    /// Release messages, each from another subscription, that wake the
    /// waiter (capped at the subscriptions it has): one for a single server;
    /// a majority for Redlock, whose releaser publishes on each master as it
    /// releases there.
    pub(crate) wake_needed: usize,
    /// Only messages for this id (or for everybody) wake (fair mode).
    pub(crate) wake_filter: Option<&'a str>,
    /// The longest wait between attempts (fair mode refreshes its queue
    /// entry).
    pub(crate) max_wait: Option<Duration>,
    /// Whether release messages and local releases announced before an
    /// attempt are dropped before it (its answer covers them).
    pub(crate) drain_before_attempt: bool,
    /// Whether only the head of the local queue subscribes and listens for
    /// releases in this process (a waiter that made its last attempt out of
    /// turn then polls).
    pub(crate) turn_only: bool,
}

/// The acquire's place and progress when the engine takes over.
pub(crate) struct Turn {
    pub(crate) ticket: Ticket,
    /// Already the head (the backend's fast path made an attempt).
    pub(crate) head: Option<Head>,
    /// Attempts made so far.
    pub(crate) attempts: u64,
}

/// A grant and the number of attempts it took.
pub(crate) struct Granted<W> {
    pub(crate) won: W,
    pub(crate) attempts: u64,
}

/// The state of one wait.
struct Wait<'p, 'a, A> {
    attempter: &'a mut A,
    policy: &'a Policy<'p>,
    stops: &'a mut Stops,
    patience: Patience,
    max_retries: Retries,
    queue: Arc<KeyQueue>,
    head: bool,
    attempts: u64,
    subscriptions: Vec<Subscription>,
}

/// What the waiting step after an attempt (or a held-here check) does.
enum Next<W> {
    /// Attempt again at once.
    Again,
    /// Wait, with these hints.
    Wait {
        hint: Option<Duration>,
        jitter: Option<Duration>,
    },
    /// Granted.
    Won(W, Instant),
    /// Patience spent: `None` to the caller.
    GiveUp,
}

/// Waits until `attempter` is granted the lock (`Some`), the patience runs
/// out (`None`), a stop happens or an attempt fails (the error); see the
/// module doc.
pub(crate) async fn wait_for_grant<A: Attempter>(
    attempter: &mut A,
    policy: &Policy<'_>,
    stops: &mut Stops,
    patience: Patience,
    max_retries: Retries,
    turn: Turn,
) -> Result<Option<Granted<A::Won>>> {
    let Turn {
        ticket,
        head,
        attempts,
    } = turn;
    let queue = Arc::clone(&ticket.queue);
    let head = match head {
        Some(head) => Some(head),
        None => tokio::select! {
            head = ticket.become_head() => Some(head),
            _ = sleep_until(patience.give_up_at) => None,
            _ = sleep_until(patience.deadline) => return Ok(None),
            err = stops.stopped() => return Err(err),
        },
    };
    let subscriptions = match head {
        Some(_) => queue.take_subscriptions(),
        None => Vec::new(),
    };
    let mut wait = Wait {
        attempter,
        policy,
        stops,
        patience,
        max_retries,
        queue,
        head: head.is_some(),
        attempts,
        subscriptions,
    };
    if wait.attempts > 0 && wait.head && wait.subscriptions.is_empty() {
        // Refused on the way in: subscribe before the next attempt (a
        // release after it will then wake us).
        wait.subscriptions = tokio::select! {
            s = wait.attempter.subscribe() => s,
            _ = sleep_until(patience.deadline) => Vec::new(),
            err = wait.stops.stopped() => return Err(err),
        };
    }
    loop {
        let (hint, jitter) = match wait.step().await? {
            Next::Again => continue,
            Next::GiveUp => return Ok(None),
            Next::Wait { hint, jitter } => (hint, jitter),
            Next::Won(won, held_until) => {
                wait.queue.set_held_here_until(Some(held_until));
                wait.queue
                    .put_subscriptions(std::mem::take(&mut wait.subscriptions));
                drop(ticket);
                let attempts = wait.attempts;
                return Ok(Some(Granted { won, attempts }));
            }
        };
        wait.pause(hint, jitter).await?;
        if wait.patience.deadline.is_some_and(|t| Instant::now() >= t) {
            wait.attempter.give_up().await;
            return Ok(None);
        }
    }
}

impl<A: Attempter> Wait<'_, '_, A> {
    /// One turn of the loop up to its wait: the held-here check, or an
    /// attempt and what follows a refusal.
    async fn step(&mut self) -> Result<Next<A::Won>> {
        let now = Instant::now();
        let budget_spent = self.patience.give_up_at.is_some_and(|t| now >= t);
        // A lock of this key held in this process: wait for its release here
        // rather than ask Redis.
        let held_here = match (self.head, budget_spent) {
            (true, false) => self.queue.held_here_until().filter(|until| *until > now),
            _ => None,
        };
        if let Some(until) = held_here {
            let hint = Some(until - now);
            return Ok(Next::Wait { hint, jitter: None });
        }
        self.attempts += 1;
        if self.policy.drain_before_attempt {
            // Messages received so far predate this attempt: its answer
            // covers them, and only later ones may wake the next wait. So
            // does a local release announced before it (a stored wake-up).
            for s in &mut self.subscriptions {
                s.drain();
            }
            let _ = self.queue.released_here.notified().now_or_never();
        }
        let (hint, jitter) = match self.attempter.attempt(self.stops).await? {
            Outcome::Granted { won, held_until } => return Ok(Next::Won(won, held_until)),
            Outcome::Refused { hint, jitter } => (hint, jitter),
        };
        let now = Instant::now();
        let Patience {
            deadline,
            give_up_at,
            ..
        } = self.patience;
        if deadline.is_some_and(|t| now >= t)
            || self.max_retries.spent(self.attempts, give_up_at, now)
        {
            self.attempter.give_up().await;
            return Ok(Next::GiveUp);
        }
        if self.subscriptions.is_empty() && (self.head || !self.policy.turn_only) {
            // Subscribe, then try again at once: a release between the
            // refused attempt and the subscription sent its message to
            // nobody. Without a subscription (pub/sub refused, say), polling
            // still works.
            self.subscriptions = tokio::select! {
                s = self.attempter.subscribe() => s,
                _ = sleep_until(deadline) => Vec::new(),
                err = self.stops.stopped() => {
                    self.attempter.stopped().await;
                    return Err(err);
                }
            };
            if !self.subscriptions.is_empty() {
                return Ok(Next::Again);
            }
        }
        Ok(Next::Wait { hint, jitter })
    }

    /// Waits for the first of: the next poll (`retryDelay`, shortened by
    /// `hint` and the policy's longest wait, or replaced by `jitter`), a
    /// release message, a release in this process, the deadline, a stop.
    async fn pause(&mut self, hint: Option<Duration>, jitter: Option<Duration>) -> Result<()> {
        let Patience {
            retry_delay,
            deadline,
            give_up_at,
        } = self.patience;
        let now = Instant::now();
        let mut wait = retry_delay;
        if let Some(hint) = hint {
            wait = wait.min(hint);
        }
        if let Some(jitter) = jitter {
            wait = jitter;
        }
        if let Some(max) = self.policy.max_wait {
            wait = wait.min(max);
        }
        // A give-up time already past no longer paces the waits (with
        // retryDelay 0 the remaining attempts follow at once).
        let next = clock::saturating_after(now, wait);
        let wake_at = [Some(next), deadline, give_up_at.filter(|t| *t > now)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next);
        let listen_here = self.head || !self.policy.turn_only;
        let (needed, filter) = (self.policy.wake_needed, self.policy.wake_filter);
        tokio::select! {
            _ = tokio::time::sleep_until(wake_at.into()) => Ok(()),
            _ = woken(&mut self.subscriptions, needed, filter), if jitter.is_none() => Ok(()),
            _ = self.queue.released_here.notified(), if listen_here => Ok(()),
            err = self.stops.stopped() => {
                self.attempter.stopped().await;
                Err(err)
            }
        }
    }
}

/// Waits until `needed` of the subscriptions (or all, if fewer) announced a
/// release (for `filter`, or for everybody). Forever without a subscription
/// (the waiter polls).
async fn woken(subscriptions: &mut [Subscription], needed: usize, filter: Option<&str>) {
    if subscriptions.is_empty() {
        return std::future::pending().await;
    }
    let needed = needed.clamp(1, subscriptions.len());
    let mut waits: FuturesUnordered<_> =
        subscriptions.iter_mut().map(|s| s.woken(filter)).collect();
    for _ in 0..needed {
        if waits.next().await.is_none() {
            return;
        }
    }
}
