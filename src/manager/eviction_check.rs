//! The eviction check of a [`LockManager`]'s connection (see
//! [`crate::eviction`]): run before an attempt to take a lock in
//! `'refuse'` mode, beside it in `'warn'` mode.

use super::{no_answer, LockManager};
use crate::connection::Conn;
use crate::error::{ErrorKind, Result};
use crate::eviction::{self, Due, EvictionGate, Finding, WarningSink};
use std::sync::Arc;
use std::time::Duration;

impl LockManager {
    /// Where this manager's eviction warnings go.
    pub fn on_warning(&self, sink: WarningSink) {
        self.eviction.set_sink(sink);
    }

    /// In `'refuse'` mode, the refusal of this server if it may evict lock
    /// keys (checked now if this connection was not checked yet); `Ok` in
    /// the other modes, and if the check could not be made (the attempt
    /// itself then checks again, and fails if the server is unreachable).
    pub async fn eviction_refusal(&self) -> Result<()> {
        match self.eviction.due() {
            Due::Wait => match self.check_eviction().await {
                Err(e) if e.kind() == ErrorKind::Eviction => Err(e),
                _ => Ok(()),
            },
            _ => self.eviction.refusal().map_or(Ok(()), Err),
        }
    }

    /// The server the check reports: `host:port` of the single server or
    /// of the Sentinels' current master (a Cluster's replies name each
    /// master themselves).
    fn checked_server(&self) -> String {
        self.connector
            .master_address()
            .unwrap_or_else(|| self.connection.address())
    }

    fn check_limit(&self) -> Duration {
        Duration::from_millis(
            self.connection.connect_timeout_ms + self.connection.command_timeout_ms,
        )
    }

    /// The check of the current connection (`INFO memory`), within
    /// `connectTimeout + commandTimeout`; its refusal, if any (`'refuse'`).
    pub(super) async fn check_eviction(&self) -> Result<()> {
        let read = || async {
            let mut conn = self.connection().await?;
            let server = self.checked_server();
            read_within(&self.eviction, &mut conn, &server, self.check_limit())
                .await
                .map_err(|e| self.in_context(e))
        };
        self.eviction.check(read).await
    }

    /// The check of `conn` in a task of its own (`'warn'`): the attempt
    /// beside it neither waits for it nor fails with it.
    pub(super) fn check_eviction_aside(&self, mut conn: Conn) {
        let gate = Arc::clone(&self.eviction);
        let (server, limit) = (self.checked_server(), self.check_limit());
        tokio::spawn(async move {
            let reader = Arc::clone(&gate);
            let read = move || async move { read_within(&reader, &mut conn, &server, limit).await };
            let _ = gate.check(read).await;
        });
    }
}

/// `INFO memory` on `conn` within `limit`; a connection error means the
/// connection may be replaced, so the next attempt checks again.
async fn read_within(
    gate: &EvictionGate,
    conn: &mut Conn,
    server: &str,
    limit: Duration,
) -> Result<Vec<(String, Finding)>> {
    let findings = tokio::time::timeout(limit, eviction::read(conn, server))
        .await
        .unwrap_or_else(|_| Err(no_answer(limit.as_millis() as u64)));
    if findings
        .as_ref()
        .is_err_and(|e| e.kind() == ErrorKind::Connection)
    {
        gate.reconnected();
    }
    findings
}
