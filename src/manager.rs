//! The lock manager: one Redis connection, the acquisition loop, and the
//! owner-checked release and extension of granted locks.
//!
//! All Redis traffic goes through a redis-rs `ConnectionManager`, created on
//! first use: it multiplexes concurrent commands over one connection and
//! reconnects after the connection drops, so the same manager works again
//! once Redis is back. Every command is bounded in time
//! (`connectTimeout + commandTimeout`), so no call hangs on an unreachable or
//! stalled server.

use crate::config::{
    ConnectionConfig, LockConfig, LockOptions, WaitReplicas, AUTO_EXTEND_DIVISOR,
    AUTO_EXTEND_RETRY_MS, RECONNECT_RETRIES,
};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{self, Attempt, HeldLock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The connection, opened lazily and dropped on close.
enum State {
    Idle,
    Open(ConnectionManager),
    Closed,
}

/// Takes, extends and releases locks in one Redis instance.
pub struct LockManager {
    config: LockConfig,
    connection: ConnectionConfig,
    client: redis::Client,
    state: Mutex<State>,
    /// Flips to `true` on [`LockManager::close`]; waiting acquires watch it.
    closed: watch::Sender<bool>,
}

impl LockManager {
    /// Checks the connection URL; connects only when the first command is sent
    /// (so creating a manager never blocks and never fails on a down server).
    pub fn new(connection: ConnectionConfig, config: LockConfig) -> Result<Self> {
        let client = redis::Client::open(connection.url.as_str())?;
        Ok(LockManager {
            config,
            connection,
            client,
            state: Mutex::new(State::Idle),
            closed: watch::Sender::new(false),
        })
    }

    pub fn config(&self) -> &LockConfig {
        &self.config
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Ends the connection. Pending acquires end with [`ErrorKind::Closed`]
    /// at their next wait; later calls fail with it at once. Commands already
    /// sent finish on their own. Idempotent.
    pub fn close(&self) {
        self.closed.send_replace(true);
        *self.lock_state() = State::Closed;
    }

    /// Tries to take the lock of `resource_name`, every `retryDelay`, until it
    /// is granted (`Some`) or the attempts allowed by `maxRetries` are spent
    /// (`None`). `options` (per call) override the manager's; `keyPrefix`
    /// stays the manager's. A Redis or connection error ends the acquisition
    /// with that error; it is never mistaken for contention.
    pub async fn acquire(
        &self,
        resource_name: &str,
        options: Option<&LockOptions>,
    ) -> Result<Option<HeldLock>> {
        let started = Instant::now();
        let config = match options {
            Some(opts) => self.config.with(opts)?,
            None => self.config.clone(),
        };
        let key = config.key_for(resource_name)?;
        let id = uuid::Uuid::new_v4().to_string();
        let retry_delay = Duration::from_millis(config.retry_delay_ms);
        let mut closed = self.closed.subscribe();
        let mut attempts: u64 = 0;
        loop {
            let mut conn = self.connection()?;
            attempts += 1;
            let sent_at = Instant::now();
            let attempt = self
                .run(|mut c| {
                    let (key, id) = (&key, &id);
                    async move { lock::try_acquire(&mut c, key, id, config.ttl_ms).await }
                })
                .await;
            let attempt = match attempt {
                Err(e) if e.kind() == ErrorKind::Closed => {
                    // Closed with the attempt in flight: it may still take the
                    // lock. A release queued behind it on the same connection
                    // hands it back (a no-op if it was not taken).
                    let limit =
                        self.connection.connect_timeout_ms + self.connection.command_timeout_ms;
                    tokio::spawn(async move {
                        let release = lock::release(&mut conn, &key, &id);
                        let _ = tokio::time::timeout(Duration::from_millis(limit), release).await;
                    });
                    return Err(e);
                }
                other => other?,
            };
            if let Attempt::Granted { fencing_token } = attempt {
                let held = HeldLock::new(
                    id,
                    key,
                    fencing_token,
                    attempts,
                    started.elapsed().as_millis() as u64,
                    config.ttl_ms,
                    sent_at,
                );
                if self.is_closed() {
                    // Closed just as the lock was granted: hand it back
                    // rather than leave it to its TTL. Best effort; the
                    // caller is told the manager is closed either way.
                    let release = lock::release(&mut conn, &held.key, &held.id);
                    let _ = tokio::time::timeout(Duration::from_millis(500), release).await;
                    return Err(Error::closed());
                }
                if let Some(wait) = config.wait_replicas {
                    self.wait_for_replicas(&held, wait).await?;
                }
                return Ok(Some(held));
            }
            if !config.max_retries.allows_another(attempts) {
                return Ok(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(retry_delay) => {}
                _ = closed.wait_for(|is_closed| *is_closed) => return Err(Error::closed()),
            }
        }
    }

    /// `WAIT count timeout` after a grant; if fewer replicas acknowledged it,
    /// releases the lock (a failover could forget it) and fails.
    ///
    /// `WAIT` counts the replicas that acknowledged every write made so far on
    /// this connection, which includes the grant. Meanwhile it holds up the
    /// other commands sent on the shared connection, for at most `timeoutMs`.
    async fn wait_for_replicas(&self, held: &HeldLock, wait: WaitReplicas) -> Result<()> {
        let acked = self
            .run(|mut c| async move {
                let n: i64 = redis::cmd("WAIT")
                    .arg(wait.count)
                    .arg(wait.timeout_ms)
                    .query_async(&mut c)
                    .await?;
                Ok(n)
            })
            .await;
        let problem = match acked {
            Ok(n) if n >= 0 && n as u64 >= wait.count => return Ok(()),
            Ok(n) => Error::new(
                ErrorKind::NotReplicated,
                format!(
                    "lock \"{}\" was not granted: {n} of the {} replicas asked for acknowledged \
                     it within {} ms (waitReplicas); it was released",
                    held.key, wait.count, wait.timeout_ms
                ),
            ),
            Err(e) => e,
        };
        let _ = self.release(held).await;
        Err(problem)
    }

    /// Owner-checked release; see [`lock::release`]. Stops auto-extension.
    /// A second call resolves `false` without asking Redis.
    pub async fn release(&self, held: &HeldLock) -> Result<bool> {
        if !held.mark_released() {
            return Ok(false);
        }
        let (key, id) = (&held.key, &held.id);
        let result = self
            .run(|mut c| async move { lock::release(&mut c, key, id).await })
            .await;
        if result.is_err() {
            held.unmark_released();
        }
        result
    }

    /// Owner-checked extension to `ttl_ms`; see [`lock::extend`]. Renews the
    /// lock's validity from the moment the command is sent.
    pub async fn extend(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        if held.is_released() {
            return Err(lock::lost(&held.key, "it was released"));
        }
        let (key, id) = (&held.key, &held.id);
        let sent_at = Instant::now();
        self.run(|mut c| async move { lock::extend(&mut c, key, id, ttl_ms).await })
            .await?;
        held.renewed(sent_at, ttl_ms);
        Ok(())
    }

    /// Whether Redis still holds this lock for its owner.
    pub async fn is_held(&self, held: &HeldLock) -> Result<bool> {
        let (key, id) = (&held.key, &held.id);
        self.run(|mut c| async move { lock::is_held(&mut c, key, id).await })
            .await
    }

    /// Whether anyone holds the lock of `resource_name`.
    pub async fn is_locked(&self, resource_name: &str) -> Result<bool> {
        let key = self.config.key_for(resource_name)?;
        let key = &key;
        self.run(|mut c| async move { lock::is_locked(&mut c, key).await })
            .await
    }

    /// Keeps `held` alive from a Tokio task: extends it to its TTL each time a
    /// third of the TTL has passed, until it is released.
    ///
    /// The lock is lost, and `on_lost` called once, when an extension finds
    /// it no longer ours, when its validity runs out before an extension
    /// succeeds (Redis unreachable or stalled: failed attempts are retried
    /// meanwhile), or when the manager is closed. After a release nothing is
    /// reported.
    pub fn auto_extend(
        self: &Arc<Self>,
        held: Arc<HeldLock>,
        on_lost: impl FnOnce(Error) + Send + 'static,
    ) {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            if let Some(err) = manager.keep_alive(&held).await {
                if !held.is_released() {
                    on_lost(err);
                }
            }
        });
    }

    /// The auto-extension loop: `None` when stopped by a release, else why
    /// the lock is lost.
    async fn keep_alive(&self, held: &HeldLock) -> Option<Error> {
        let mut stop = held.stop_signal();
        let mut closed = self.closed.subscribe();
        let closed_error = || {
            lock::lost(
                &held.key,
                "the lock manager was closed, so the lock is no longer extended",
            )
        };
        loop {
            let ttl_ms = held.ttl_ms();
            let pause = Duration::from_millis((ttl_ms / AUTO_EXTEND_DIVISOR).max(1));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => return None,
                _ = closed.wait_for(|c| *c) => return Some(closed_error()),
            }
            // Extend, retrying failed attempts, until it succeeds, the lock is
            // found lost, or its validity runs out.
            loop {
                let deadline = tokio::time::Instant::from_std(held.valid_until());
                let attempt = tokio::select! {
                    r = self.extend(held, ttl_ms) => r,
                    _ = tokio::time::sleep_until(deadline) => {
                        return Some(lock::lost(&held.key, "its validity ran out before an extension succeeded"));
                    }
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = closed.wait_for(|c| *c) => return Some(closed_error()),
                };
                let err = match attempt {
                    Ok(()) => break,
                    Err(e) if e.kind() == ErrorKind::LockLost || e.kind() == ErrorKind::Closed => {
                        return Some(if e.kind() == ErrorKind::Closed {
                            closed_error()
                        } else {
                            e
                        });
                    }
                    Err(e) => e,
                };
                let retry = tokio::time::sleep(Duration::from_millis(AUTO_EXTEND_RETRY_MS));
                tokio::select! {
                    _ = retry => {}
                    _ = tokio::time::sleep_until(deadline) => {
                        return Some(lock::lost(
                            &held.key,
                            &format!("its validity ran out before an extension succeeded (last error: {err})"),
                        ));
                    }
                    _ = stop.wait_for(|s| *s) => return None,
                    _ = closed.wait_for(|c| *c) => return Some(closed_error()),
                }
            }
        }
    }

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The guarded section never panics, but a poisoned lock must not
        // turn into a panic either.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shared connection, created on first use.
    fn connection(&self) -> Result<ConnectionManager> {
        let mut state = self.lock_state();
        match &*state {
            State::Open(conn) => Ok(conn.clone()),
            State::Closed => Err(Error::closed()),
            State::Idle => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_millis(
                        self.connection.connect_timeout_ms,
                    )))
                    .set_response_timeout(Some(Duration::from_millis(
                        self.connection.command_timeout_ms,
                    )))
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let conn = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
                *state = State::Open(conn.clone());
                Ok(conn)
            }
        }
    }

    /// Runs one Redis operation on the shared connection, within
    /// `connectTimeout + commandTimeout` in all, and ends it with
    /// [`ErrorKind::Closed`] if the manager is closed meanwhile.
    ///
    /// An operation that failed because the connection was refused, reset or
    /// broken is tried once more (redis-rs reconnects on the next command, so
    /// the first command after an outage would otherwise fail). Every
    /// operation passed here is safe to repeat: the scripts are owner-checked
    /// and the acquire script re-grants a lock that already holds our id.
    async fn run<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let limit = self.connection.connect_timeout_ms + self.connection.command_timeout_ms;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(limit);
        let mut closed = self.closed.subscribe();
        let mut retried = false;
        loop {
            let conn = self.connection()?;
            let result = tokio::select! {
                r = tokio::time::timeout_at(deadline, op(conn)) => r.unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Connection,
                        format!("Redis connection failed: no answer within {limit} ms"),
                    ))
                }),
                _ = closed.wait_for(|is_closed| *is_closed) => Err(Error::closed()),
            };
            match result {
                Err(e) if e.is_retryable() && !retried => retried = true,
                other => return other,
            }
        }
    }
}
