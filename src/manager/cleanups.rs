//! What a [`LockManager`] leaves behind an acquire that failed, was aborted
//! or was given up: the release (and fair-queue exit) queued behind an
//! attempt whose outcome is unknown (see [`crate::cleanup`]), and the
//! fair-queue exit after giving up.

use super::{LockManager, CLEANUP_WAIT};
use crate::cleanup::Job;
use crate::clock;
use crate::connection::Conn;
use crate::lock;
use crate::options::LockConfig;
use std::time::Instant;

impl LockManager {
    /// Leaves the fair queue after giving up (best effort: an entry left
    /// behind expires by itself).
    pub(super) async fn leave_queue(&self, config: &LockConfig, key: &str, id: &str) {
        if config.fair {
            let _ = self
                .run(|mut c| async move {
                    lock::leave_queue(&mut c, key, id, self.connector.publish()).await
                })
                .await;
        }
    }

    /// After an abort or close: release what an attempt in flight (sent at
    /// `sent_at`) may have taken (`release`) and leave the fair queue, on the
    /// same connection so these commands follow that attempt; see
    /// [`LockManager::clean_up_behind`]. The caller waits for them at most
    /// [`CLEANUP_WAIT`] (so on a responsive Redis nothing is left behind when
    /// it hears of the abort, and on a stalled one the abort is still prompt).
    pub(super) async fn cleanup(
        &self,
        conn: Option<Conn>,
        config: &LockConfig,
        key: &str,
        id: &str,
        release: bool,
        sent_at: Instant,
    ) {
        if let Some(done) = self.clean_up_behind(conn, config, key, id, release, sent_at) {
            let _ = tokio::time::timeout(CLEANUP_WAIT, done).await;
        }
    }

    /// Queues the undoing of an attempt sent at `sent_at` whose outcome is
    /// unknown; see [`Job::behind`]. The receiver resolves once it was tried.
    pub(super) fn clean_up_behind(
        &self,
        conn: Option<Conn>,
        config: &LockConfig,
        key: &str,
        id: &str,
        release: bool,
        sent_at: Instant,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        if !release && !config.fair {
            return None;
        }
        let mut job = Job::behind(conn?, config, key, id, sent_at);
        job.release = release;
        job.token_key = Some(self.token_key(config, key));
        job.publish = self.connector.publish();
        Some(self.cleanups.push(job))
    }

    /// Releases `key` for `id` on this server behind a Redlock attempt sent
    /// at `sent_at` with `ttl_ms` (see [`Job::behind`]).
    pub async fn undo_attempt(
        &self,
        key: &str,
        id: &str,
        ttl_ms: u64,
        sent_at: Instant,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let conn = self.connection().await.ok()?;
        let mut job = Job::behind(conn, &self.config, key, id, sent_at);
        job.leave_queue = false;
        job.until = clock::saturating_after(sent_at, clock::duration_ms(ttl_ms));
        Some(self.cleanups.push(job))
    }

    /// Waits until the cleanups behind failed attempts are done, for at most
    /// `connectTimeout + commandTimeout` (the binding keeps Node alive
    /// meanwhile, so that a script that got a connection error and ends
    /// still cleans up behind it if the server answers again by then).
    pub async fn settle(&self) {
        self.cleanups.settle().await;
    }

    /// Cleanups behind failed attempts not done yet (for tests).
    pub fn pending_cleanups(&self) -> usize {
        self.cleanups.pending()
    }
}
