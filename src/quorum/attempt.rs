//! What one attempt is under Redlock, for the waiting engine
//! ([`crate::wait::engine`]): the acquire script with a new lock id on every
//! master at once, counted by [`QuorumManager::attempt`]; release
//! subscriptions on every master that accepts.

use super::{QuorumManager, Vote};
use crate::clock;
use crate::error::Result;
use crate::lock::Grant;
use crate::notifier::Subscription;
use crate::wait::{Attempter, Outcome, Stops};
use std::time::{Duration, Instant};

/// One acquire's attempts on the masters.
pub(super) struct RedlockAttempt<'q> {
    pub(super) manager: &'q QuorumManager,
    pub(super) key: String,
    pub(super) ttl_ms: u64,
    pub(super) drift_ppm: u64,
    pub(super) retry_delay_ms: u64,
}

impl Attempter for RedlockAttempt<'_> {
    /// The winning attempt's lock id, and its grant.
    type Won = (String, Grant);

    async fn attempt(&mut self, stops: &mut Stops) -> Result<Outcome<Self::Won>> {
        // A new id per attempt: the undoing of an earlier attempt, which may
        // still be on its way to a slow master, can then never delete what
        // this one takes.
        let id = uuid::Uuid::new_v4().to_string();
        let (manager, key, ttl_ms) = (self.manager, self.key.as_str(), self.ttl_ms);
        let vote = tokio::select! {
            v = manager.attempt(key, &id, ttl_ms, self.drift_ppm) => v?,
            err = stops.stopped() => {
                manager.undo(key, &id, ttl_ms, Instant::now(), &[]).await;
                return Err(err);
            }
        };
        match vote {
            Vote::Won(grant) => Ok(Outcome::Granted {
                held_until: clock::saturating_after(
                    grant.sent_at,
                    Duration::from_millis(grant.ttl_ms),
                ),
                won: (id, grant),
            }),
            Vote::Lost { pttl_ms, split } => {
                let hint = pttl_ms.map(|p| clock::duration_ms(p).max(Duration::from_millis(1)));
                // Several contenders each took some masters: back off for a
                // random part of retryDelay so the next round is not a tie.
                let spread = self.retry_delay_ms.max(10);
                let jitter = split.then(|| Duration::from_millis(1 + random_below(spread)));
                Ok(Outcome::Refused { hint, jitter })
            }
        }
    }

    async fn subscribe(&mut self) -> Vec<Subscription> {
        self.manager.subscribe_all(&self.key).await
    }

    /// Nothing to leave: a refused attempt was undone already.
    async fn give_up(&mut self) {}

    /// Nothing to undo outside an attempt.
    async fn stopped(&mut self) {}
}

/// A random number in `0..n` (n ≥ 1), from the OS-seeded UUID generator.
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % n.max(1) as u128) as u64
}
