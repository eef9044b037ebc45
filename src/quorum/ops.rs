//! The owner-checked operations on a Redlock lock: each goes to every master
//! at once and counts as done when a majority answered so.

use super::{tally, Failure, QuorumManager};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{self, HeldLock};
use crate::options::validity_ms_with;
use futures_util::future::join_all;
use std::time::Instant;

impl QuorumManager {
    /// Releases the lock on every master. `true` if a majority still held it
    /// (so it was ours until now); `false` if it had expired or been taken.
    pub async fn release(&self, held: &HeldLock) -> Result<bool> {
        if !held.mark_released() {
            return Ok(false);
        }
        let results = join_all(
            self.nodes
                .iter()
                .map(|n| n.release_key(&held.key, &held.id)),
        )
        .await;
        let (answers, failures) = tally(results);
        let answered = answers.len();
        let released = answers.into_iter().filter(|r| *r).count();
        if answered < self.quorum() {
            held.unmark_released();
            return Err(self.no_quorum("release", answered, &failures));
        }
        self.queues.released(&held.key);
        Ok(released >= self.quorum())
    }

    /// Extends the lock to `ttl_ms` on every master; it stays held if a
    /// majority extended it within the new validity budget.
    pub async fn extend(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        if held.is_released() {
            return Err(lock::lost(&held.key, "it was released"));
        }
        let sent_at = Instant::now();
        let results = join_all(
            self.nodes
                .iter()
                .map(|n| n.extend_key(&held.key, &held.id, ttl_ms)),
        )
        .await;
        let elapsed_ms = sent_at.elapsed().as_millis() as u64;
        let (answers, failed) = tally(results);
        let extended = answers.len();
        // A master that no longer holds it answered, with a refusal.
        let (lost, failures): (Vec<Failure>, Vec<Failure>) = failed
            .into_iter()
            .partition(|(_, e)| e.kind() == ErrorKind::LockLost);
        let lost = lost.len();
        if extended >= self.quorum() && validity_ms_with(ttl_ms, self.config.drift_ppm) > elapsed_ms
        {
            held.renewed(sent_at, ttl_ms);
            return Ok(());
        }
        if lost > self.nodes.len() - self.quorum() {
            return Err(lock::lost(
                &held.key,
                &format!(
                    "{lost} of {} Redis masters no longer hold it (Redlock needs {})",
                    self.nodes.len(),
                    self.quorum()
                ),
            ));
        }
        if extended >= self.quorum() {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "Redlock extend of \"{}\": the masters answered after {elapsed_ms} ms, past \
                     the validity budget of the new ttl",
                    held.key
                ),
            ));
        }
        Err(self.no_quorum("extend", extended + lost, &failures))
    }

    /// Whether a majority of the masters hold this lock for its owner.
    pub async fn is_held(&self, held: &HeldLock) -> Result<bool> {
        let results = join_all(
            self.nodes
                .iter()
                .map(|n| n.is_held_key(&held.key, &held.id)),
        )
        .await;
        self.majority("isHeld", results)
    }

    /// Whether a majority of the masters hold a lock of `resource_name`.
    pub async fn is_locked(&self, resource_name: &str) -> Result<bool> {
        let key = self.config.key_for(resource_name)?;
        let results = join_all(self.nodes.iter().map(|n| n.is_locked_key(&key))).await;
        self.majority("isLocked", results)
    }

    fn majority(&self, what: &str, results: Vec<Result<bool>>) -> Result<bool> {
        let (answers, failures) = tally(results);
        let answered = answers.len();
        let yes = answers.into_iter().filter(|v| *v).count();
        if yes >= self.quorum() {
            return Ok(true);
        }
        if answered < self.quorum() {
            return Err(self.no_quorum(what, answered, &failures));
        }
        Ok(false)
    }
}
