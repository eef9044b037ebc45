//! The session of a [`LockManager`] with its Redis: the connection, opened
//! lazily and dropped on close, and how every command is run (bounded in
//! time, tried once more after a dropped connection, the master asked for
//! again from the Sentinels after a failover, errors named after their
//! server).

use super::{no_answer, LockManager, State};
use crate::clock;
use crate::connection::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::eviction::Due;
use crate::options::Mode;
use std::future::Future;
use std::sync::MutexGuard;

impl LockManager {
    pub(super) fn lock_state(&self) -> MutexGuard<'_, State> {
        // The guarded section never panics, but a poisoned lock must not
        // turn into a panic either.
        crate::sync::lock(&self.state)
    }

    /// The shared connection, created on first use.
    pub(super) async fn connection(&self) -> Result<Conn> {
        {
            let mut state = self.lock_state();
            match &*state {
                State::Open(conn) => return Ok(conn.clone()),
                State::Closed => return Err(Error::closed()),
                State::Idle => {
                    if let Some(conn) = self.connector.connect_lazy()? {
                        self.eviction.reconnected();
                        *state = State::Open(conn.clone());
                        return Ok(conn);
                    }
                }
            }
        }
        // Boxed: the opening of a Cluster or Sentinel connection is a large
        // future, which would otherwise be part of every call's.
        Box::pin(self.open_connection()).await
    }

    /// Cluster and Sentinel connect before the first command.
    async fn open_connection(&self) -> Result<Conn> {
        let _connecting = self.connecting.lock().await;
        if let State::Open(conn) = &*self.lock_state() {
            return Ok(conn.clone());
        }
        let conn = self
            .connector
            .connect()
            .await
            .map_err(|e| self.in_context(e))?;
        let mut state = self.lock_state();
        match &*state {
            State::Closed => Err(Error::closed()),
            _ => {
                self.eviction.reconnected();
                *state = State::Open(conn.clone());
                Ok(conn)
            }
        }
    }

    /// Names the server (or the deployment) in a connection error, and in
    /// a Redis error of a Cluster or Sentinel (a single server's error
    /// replies stay as they were, as in 1.0). Added once.
    pub(super) fn in_context(&self, err: Error) -> Error {
        if err.has_context() {
            return err;
        }
        match (&self.connection.mode, err.kind()) {
            (Mode::Single, ErrorKind::Connection) => err.context(&self.connection.address()),
            (Mode::Single, _) => err,
            (Mode::Cluster { .. }, ErrorKind::Connection | ErrorKind::Redis) => {
                err.context(&format!("Redis Cluster ({})", self.connection.address()))
            }
            (Mode::Sentinel { .. }, ErrorKind::Connection | ErrorKind::Redis) => {
                err.context(&format!("Redis Sentinel ({})", self.connector.server()))
            }
            _ => err,
        }
    }

    /// Forgets the connection, so that the next command opens a new one
    /// (Sentinel mode: to the master the Sentinels name now).
    pub(super) fn reconnect_later(&self) {
        let mut state = self.lock_state();
        if let State::Open(_) = &*state {
            *state = State::Idle;
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
    pub(super) async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_with(op, true, false).await
    }

    /// [`LockManager::run`] for an operation that may take a lock: on a
    /// connection not yet checked for eviction (see [`crate::eviction`]),
    /// the check goes first (`'refuse'`: a refusal fails the operation
    /// before anything is sent) or alongside (`'warn'`). Also on the second
    /// try after a connection error, which may be on a new connection.
    pub(super) async fn run_gated<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_with(op, true, true).await
    }

    /// [`LockManager::run`], with the second try only if `retry`, and the
    /// eviction check if `gated`.
    pub(super) async fn run_with<T, F, Fut>(&self, mut op: F, retry: bool, gated: bool) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let limit =
            (self.connection.connect_timeout_ms).saturating_add(self.connection.command_timeout_ms);
        let deadline = clock::tokio_after(tokio::time::Instant::now(), clock::duration_ms(limit));
        let mut closed = self.closed.subscribe();
        let mut retried = !retry;
        loop {
            let result = tokio::select! {
                r = tokio::time::timeout_at(deadline, async {
                    let due = if gated { self.eviction.due() } else { Due::Nothing };
                    match due {
                        Due::Nothing => op(self.connection().await?).await,
                        Due::Wait => {
                            Box::pin(self.check_eviction()).await?;
                            op(self.connection().await?).await
                        }
                        Due::Alongside => {
                            let conn = self.connection().await?;
                            self.check_eviction_aside(conn.clone());
                            op(conn).await
                        }
                    }
                }) => r.unwrap_or_else(|_| Err(no_answer(limit))),
                _ = closed.wait_for(|is_closed| *is_closed) => Err(Error::closed()),
            };
            if let Err(e) = &result {
                if e.kind() == ErrorKind::Connection {
                    // redis-rs replaces the connection after such an error.
                    self.eviction.reconnected();
                }
                // The master may have moved: ask the Sentinels again.
                if self.connector.follows_master() && (e.is_retryable() || e.is_read_only()) {
                    self.reconnect_later();
                    if !retried {
                        retried = true;
                        continue;
                    }
                }
            }
            match result {
                Err(e) if e.is_retryable() && !retried => retried = true,
                Err(e) if matches!(e.kind(), ErrorKind::Connection | ErrorKind::Redis) => {
                    return Err(self.in_context(e))
                }
                other => return other,
            }
        }
    }
}
