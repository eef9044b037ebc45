//! What one attempt is on a single server, for the waiting engine
//! ([`crate::wait::engine`]): `SET NX PX` (or the fair-queue script) on the
//! manager's connection, the release subscription on its notifier, and the
//! fair-queue exit after giving up or stopping.

use super::{held_lock, LockManager};
use crate::clock;
use crate::config::LockConfig;
use crate::connection::Conn;
use crate::error::Result;
use crate::lock::{self, Attempt, HeldLock};
use crate::notifier::Subscription;
use crate::wait::{Attempter, Outcome, Stops};
use std::time::{Duration, Instant};

/// One acquire's attempts on one server.
pub(super) struct SingleAttempt<'m> {
    pub(super) manager: &'m LockManager,
    pub(super) config: LockConfig,
    pub(super) key: String,
    pub(super) id: String,
    /// The connection of the last attempt: cleanups after a stop still go
    /// out on it.
    pub(super) last_conn: Option<Conn>,
}

/// A grant on one server.
pub(super) struct SingleWon {
    fencing_token: u64,
    sent_at: Instant,
    conn: Conn,
}

impl SingleAttempt<'_> {
    /// The lock granted after `attempts` attempts (see
    /// [`LockManager::granted`]: a close meanwhile, `waitReplicas`).
    pub(super) async fn finish(
        self,
        won: SingleWon,
        attempts: u64,
        started: Instant,
    ) -> Result<Option<HeldLock>> {
        let SingleAttempt {
            manager,
            config,
            key,
            id,
            ..
        } = self;
        let held = held_lock(
            &config,
            started,
            id,
            key,
            won.fencing_token,
            attempts,
            won.sent_at,
        );
        manager.granted(held, &config, won.conn).await
    }
}

impl Attempter for SingleAttempt<'_> {
    type Won = SingleWon;

    async fn attempt(&mut self, stops: &mut Stops) -> Result<Outcome<SingleWon>> {
        let conn = self.manager.connection().await?;
        self.last_conn = Some(conn.clone());
        let sent_at = Instant::now();
        let (config, key, id) = (&self.config, &self.key, &self.id);
        match self.manager.attempt(config, key, id, stops, &conn).await? {
            Attempt::Granted { fencing_token } => Ok(Outcome::Granted {
                held_until: clock::saturating_after(sent_at, Duration::from_millis(config.ttl_ms)),
                won: SingleWon {
                    fencing_token,
                    sent_at,
                    conn,
                },
            }),
            Attempt::Refused { pttl_ms } => {
                let hint = match pttl_ms {
                    // Expires within the millisecond.
                    0 if !config.fair => Some(Duration::from_millis(1)),
                    ms if ms > 0 => Some(clock::duration_ms(ms as u64)),
                    // No TTL (-1), or in fair mode free but another waiter's
                    // turn (0): wait for a message or a poll.
                    _ => None,
                };
                Ok(Outcome::Refused { hint, jitter: None })
            }
        }
    }

    async fn subscribe(&mut self) -> Vec<Subscription> {
        let channel = lock::channel(&self.key);
        self.manager
            .notifier
            .subscribe(&channel)
            .await
            .ok()
            .into_iter()
            .collect()
    }

    async fn give_up(&mut self) {
        self.manager
            .leave_queue(&self.config, &self.key, &self.id)
            .await;
    }

    async fn stopped(&mut self) {
        // Outside an attempt, only a fair-queue entry can be left behind.
        if !self.config.fair {
            return;
        }
        let conn = match self.last_conn.take() {
            Some(c) => Some(c),
            None => self.manager.connection().await.ok(),
        };
        let (config, key, id) = (&self.config, &self.key, &self.id);
        self.manager
            .cleanup(conn, config, key, id, false, Instant::now())
            .await;
    }
}
