//! The lock manager: one Redis connection, the acquisition loop, and the
//! owner-checked release and extension of granted locks.
//!
//! All Redis traffic goes through a redis-rs `ConnectionManager`, created on
//! first use: it multiplexes concurrent commands over one connection and
//! reconnects after the connection drops, so the same manager works again
//! once Redis is back. Every command is bounded in time
//! (`connectTimeout + commandTimeout`), so no call hangs on an unreachable or
//! stalled server.

use crate::config::{ConnectionConfig, LockConfig, RECONNECT_RETRIES};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{self, Grant};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};
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
    /// (`None`). A Redis or connection error ends the acquisition with that
    /// error; it is never mistaken for contention.
    pub async fn acquire(&self, resource_name: &str) -> Result<Option<Grant>> {
        let started = Instant::now();
        let key = self.config.key_for(resource_name)?;
        let id = uuid::Uuid::new_v4().to_string();
        let retry_delay = Duration::from_millis(self.config.retry_delay_ms);
        let mut closed = self.closed.subscribe();
        let mut attempts: u64 = 0;
        loop {
            let mut conn = self.connection()?;
            attempts += 1;
            let granted = self
                .bounded(lock::try_set(&mut conn, &key, &id, self.config.ttl_ms))
                .await?;
            if granted {
                if self.is_closed() {
                    // Closed while the SET was in flight: hand the lock back
                    // rather than leave it to its TTL. Best effort; the
                    // caller is told the manager is closed either way.
                    let _ = self.bounded(lock::release(&mut conn, &key, &id)).await;
                    return Err(Error::closed());
                }
                return Ok(Some(Grant {
                    id,
                    key,
                    acquired_on_attempt: attempts,
                    acquire_delay_ms: started.elapsed().as_millis() as u64,
                }));
            }
            if !self.config.max_retries.allows_another(attempts) {
                return Ok(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(retry_delay) => {}
                _ = closed.wait_for(|is_closed| *is_closed) => return Err(Error::closed()),
            }
        }
    }

    /// Owner-checked release; see [`lock::release`].
    pub async fn release(&self, key: &str, id: &str) -> Result<bool> {
        let mut conn = self.connection()?;
        self.bounded(lock::release(&mut conn, key, id)).await
    }

    /// Owner-checked extension to `ttl_ms`; see [`lock::extend`].
    pub async fn extend(&self, key: &str, id: &str, ttl_ms: u64) -> Result<()> {
        let mut conn = self.connection()?;
        self.bounded(lock::extend(&mut conn, key, id, ttl_ms)).await
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

    /// Runs one Redis operation within `connectTimeout + commandTimeout`.
    async fn bounded<T>(&self, op: impl Future<Output = Result<T>>) -> Result<T> {
        let limit = self.connection.connect_timeout_ms + self.connection.command_timeout_ms;
        match tokio::time::timeout(Duration::from_millis(limit), op).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Connection,
                format!("Redis connection failed: no answer within {limit} ms"),
            )),
        }
    }
}
