//! What one attempt is on a single server, for the waiting engine
//! ([`crate::wait::engine`]): `SET NX PX` (or the fair-queue script) on the
//! manager's connection, the release subscription on its notifier, and the
//! fair-queue exit after giving up or stopping.

use super::{held_lock, LockManager};
use crate::clock;
use crate::connection::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{self, Attempt, HeldLock};
use crate::notifier::Subscription;
use crate::options::{LockConfig, QUEUE_ENTRY_MS};
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

/// The attempt itself, and what follows a grant.
impl LockManager {
    /// One acquisition attempt. If the caller aborts or the manager closes
    /// while it is in flight, or it fails on the connection (no answer in
    /// time, connection lost) after its command may have been written, a
    /// release (and fair-queue exit) is queued behind it, since Redis may
    /// still run it; see [`crate::cleanup`]. An abort or close waits for that
    /// release at most [`CLEANUP_WAIT`]; a connection error does not wait.
    pub(super) async fn attempt(
        &self,
        config: &LockConfig,
        key: &str,
        id: &str,
        stops: &mut Stops,
        conn: &Conn,
    ) -> Result<Attempt> {
        let (fair, ttl_ms, publish) = (config.fair, config.ttl_ms, self.connector.publish());
        let sent_at = Instant::now();
        let fence = &lock::Fence::new(&config.key_prefix, key, self.is_cluster());
        let op = self.run_gated(|mut c| async move {
            if fair {
                lock::try_acquire_fair(&mut c, key, id, ttl_ms, QUEUE_ENTRY_MS, publish, fence)
                    .await
            } else {
                lock::try_acquire(&mut c, key, id, ttl_ms, fence).await
            }
        });
        let result = tokio::select! {
            r = op => r,
            err = stops.stopped() => Err(err),
        };
        if let Err(e) = &result {
            let behind = Some(conn.clone());
            match e.kind() {
                ErrorKind::Closed | ErrorKind::Aborted => {
                    self.cleanup(behind, config, key, id, true, sent_at).await;
                }
                ErrorKind::Connection => {
                    drop(self.clean_up_behind(behind, config, key, id, true, sent_at));
                }
                _ => {}
            }
        }
        result
    }

    /// A grant: hand it back if the manager closed meanwhile, and wait for
    /// replicas if asked to.
    pub(super) async fn granted(
        &self,
        held: HeldLock,
        config: &LockConfig,
        conn: Conn,
    ) -> Result<Option<HeldLock>> {
        let token_key = self.token_key(config, &held.key);
        let held = held.with_token_key(token_key);
        if self.is_closed() {
            let sent_at = Instant::now();
            self.cleanup(Some(conn), config, &held.key, &held.id, true, sent_at)
                .await;
            return Err(Error::closed());
        }
        if let Some(wait) = config.wait_replicas {
            self.wait_for_replicas(&held, wait).await?;
        }
        Ok(Some(held))
    }
}
