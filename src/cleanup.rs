//! Cleaning up behind acquisition attempts whose outcome is unknown.
//!
//! An attempt that timed out, failed on a broken connection, or was cut short
//! by an abort or a close may still be run by Redis: its command was written,
//! and a stalled server (`DEBUG SLEEP`, `CLIENT PAUSE`, a long script, a
//! stopped process) runs it when it wakes. The lock it takes, under an id
//! nobody holds, would stay for the whole ttl, and a fair-mode entry would
//! stay in the queue until it expires.
//!
//! So such an attempt leaves a [`Job`] here: an owner-checked release of its
//! id (and, in fair mode, its removal from the queue). One worker task per
//! manager runs the jobs, on the connection of the attempt, so that on a
//! connection that stayed open the release reaches Redis after the attempt.
//! A job that got no answer is tried again every [`RETRY`] until Redis
//! answers, or until its `until` passed (the attempt's ttl, after which the
//! lock would have expired by itself); a job is always tried at least once.
//! Releases are owner-checked, so another owner's lock is never touched, and
//! an id is used by one attempt only.
//!
//! Nothing here holds a caller up: a failed acquire hands its job over and
//! rejects at once. The worker lives only while jobs are left; it does not
//! keep Node alive by itself (the binding's `settle` request does, for at
//! most `connectTimeout + commandTimeout`).

use crate::clock;
use crate::connection::Conn;
use crate::error::{ErrorKind, Result};
use crate::lock::{self, Publish};
use crate::options::{LockConfig, QUEUE_ENTRY_MS};
use crate::sync::lock;
use futures_util::future::join_all;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// The pause between two rounds while some job got no answer.
pub const RETRY: Duration = Duration::from_millis(250);

/// The most jobs tried at once in one round.
const BATCH: usize = 512;

/// The most jobs kept: past it, a new job is dropped (its lock, if the
/// attempt ever runs, expires after its ttl as before).
const MAX_JOBS: usize = 10_000;

/// What is left to undo of one attempt.
pub struct Job {
    pub conn: Conn,
    pub key: String,
    pub id: String,
    /// Release the lock if it holds `id`.
    pub release: bool,
    /// The key that keeps the grant's fencing token (see
    /// [`crate::fencing::token_key`]), deleted with the lock; `None` for a
    /// Redlock master (no tokens there).
    pub token_key: Option<String>,
    /// Remove `id` from the key's fair queue.
    pub leave_queue: bool,
    pub publish: Publish,
    /// After this, nothing is left to undo.
    pub until: Instant,
}

impl Job {
    /// The undoing of an attempt of `config` for `key` with `id`, sent at
    /// `sent_at` on `conn`: release the lock (the caller clears `release`
    /// for a waiter that had no attempt in flight), and in fair mode leave
    /// the queue. Kept until the lock would have expired (or the fair entry,
    /// if later).
    pub fn behind(conn: Conn, config: &LockConfig, key: &str, id: &str, sent_at: Instant) -> Job {
        let mut lasts_ms = config.ttl_ms;
        if config.fair {
            lasts_ms = lasts_ms.max(QUEUE_ENTRY_MS);
        }
        Job {
            conn,
            key: key.to_owned(),
            id: id.to_owned(),
            release: true,
            token_key: None,
            leave_queue: config.fair,
            publish: Publish::default(),
            until: clock::saturating_after(sent_at, clock::duration_ms(lasts_ms)),
        }
    }
}

/// A job and who waits for its first try (an abort or close waits a little).
struct Entry {
    job: Job,
    done: Option<oneshot::Sender<()>>,
    tried: bool,
}

/// The jobs of one manager and their worker.
pub struct Cleanups {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Whether jobs are left; changed only when that changes, so that the
    /// waiters of [`Cleanups::idle`] are woken once, not at every job.
    busy: watch::Sender<bool>,
    /// The bound of one try (`connectTimeout + commandTimeout`).
    try_limit: Duration,
}

#[derive(Default)]
struct State {
    entries: Vec<Entry>,
    /// Jobs taken by the worker for its current round.
    in_round: usize,
    worker: bool,
}

impl Cleanups {
    pub fn new(try_limit: Duration) -> Self {
        Cleanups {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                busy: watch::Sender::new(false),
                try_limit,
            }),
        }
    }

    /// Hands `job` to the worker (starting it if needed). The receiver, if
    /// kept, resolves once the job was tried once (answered or not).
    pub fn push(&self, job: Job) -> oneshot::Receiver<()> {
        let (done, finished) = oneshot::channel();
        let start = {
            let mut state = lock(&self.shared.state);
            if state.entries.len() >= MAX_JOBS {
                return finished;
            }
            state.entries.push(Entry {
                job,
                done: Some(done),
                tried: false,
            });
            self.shared.set_busy(true);
            !std::mem::replace(&mut state.worker, true)
        };
        if start {
            tokio::spawn(work(Arc::clone(&self.shared)));
        }
        finished
    }

    /// Jobs not finished yet.
    pub fn pending(&self) -> usize {
        let state = lock(&self.shared.state);
        state.entries.len() + state.in_round
    }

    /// Resolves once no job is left, or after one try's bound
    /// (`connectTimeout + commandTimeout`) at most.
    pub async fn settle(&self) {
        let _ = tokio::time::timeout(self.shared.try_limit, self.idle()).await;
    }

    /// Resolves once no job is left.
    pub async fn idle(&self) {
        let mut busy = self.shared.busy.subscribe();
        let _ = busy.wait_for(|busy| !*busy).await;
    }
}

impl Shared {
    fn set_busy(&self, busy: bool) {
        self.busy
            .send_if_modified(|b| std::mem::replace(b, busy) != busy);
    }
}

/// The worker: rounds of tries until no job is left.
async fn work(shared: Arc<Shared>) {
    loop {
        let round = {
            let mut state = lock(&shared.state);
            let now = Instant::now();
            // Expired jobs go, once tried.
            state.entries.retain(|e| !e.tried || e.job.until > now);
            if state.entries.is_empty() {
                state.worker = false;
                shared.set_busy(false);
                return;
            }
            let take = state.entries.len().min(BATCH);
            let round: Vec<Entry> = state.entries.drain(..take).collect();
            state.in_round = round.len();
            round
        };
        let limit = shared.try_limit;
        let results = join_all(round.into_iter().map(|mut entry| async move {
            entry.tried = true;
            let answered = matches!(
                tokio::time::timeout(limit, run(&mut entry.job)).await,
                Ok(Ok(()))
            );
            if let Some(done) = entry.done.take() {
                let _ = done.send(());
            }
            (!answered).then_some(entry)
        }))
        .await;
        let left: Vec<Entry> = results.into_iter().flatten().collect();
        let retry = !left.is_empty();
        {
            let mut state = lock(&shared.state);
            state.in_round = 0;
            // Back in front: the oldest jobs are tried first.
            state.entries.splice(0..0, left);
        }
        if retry {
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// One try of `job`. An error reply of Redis ends it too (Redis answered:
/// trying again would not help); only a connection problem is retried.
async fn run(job: &mut Job) -> Result<()> {
    let outcome: Result<()> = async {
        if job.release {
            let token_key = job.token_key.as_deref();
            lock::release(&mut job.conn, &job.key, &job.id, token_key, job.publish).await?;
            job.release = false;
        }
        if job.leave_queue {
            lock::leave_queue(&mut job.conn, &job.key, &job.id, job.publish).await?;
            job.leave_queue = false;
        }
        Ok(())
    }
    .await;
    match outcome {
        Err(e) if e.kind() != ErrorKind::Connection => Ok(()),
        other => other,
    }
}
