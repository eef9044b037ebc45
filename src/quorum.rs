//! Redlock: one lock over several independent Redis masters, granted by a
//! majority of them.
//!
//! Each master is a single-instance [`LockManager`] of its own (its own
//! connection, bounds, reconnection and release notifications). An attempt
//! sends the acquire script, with one lock id (new for every attempt), to
//! every master at once; the lock is granted when a majority (`n / 2 + 1`)
//! took it and time is left of its validity budget: `ttl − elapsed − (ttl ·
//! driftFactor + 2 ms)`, counted from the moment the attempt was sent.
//! Otherwise the attempt is undone on every master (release is
//! owner-checked, so undoing everywhere is safe, and the next attempt's new
//! id cannot be undone by it), and the waiter waits as in single-instance
//! mode: woken by
//! a release message from any master, or by `retryDelay` (with jitter after a
//! split vote, so that contenders do not collide again in step).
//!
//! Contention and outage are told apart: if fewer than a majority of the
//! masters answered at all, the call fails with a connection error that
//! names each master that failed and why; if they answered and refused, the
//! lock is busy and the waiter waits.
//!
//! Fencing tokens are not offered: every master keeps its own counter, and
//! no combination of the tokens of a majority is guaranteed to increase from
//! one grant to the next, so a token here would promise what it cannot keep.
//! Fair mode and `waitReplicas` are single-server features, refused here.

use crate::error::{Error, ErrorKind, Result};
use crate::eviction::WarningSink;
use crate::keepalive::{self, Extender, KeepAliveEvent};
use crate::lock::{Attempt, Grant, HeldLock};
use crate::manager::LockManager;
use crate::notifier::Subscription;
use crate::options::{validity_ms_with, ConnectionConfig, EvictionPolicy, LockConfig, LockOptions};
use crate::wait::{wait_for_grant, KeyQueues, Policy, Stops, Turn};
use attempt::RedlockAttempt;
use futures_util::future::join_all;

mod attempt;
mod ops;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a failed or cancelled attempt waits for its undoing.
const UNDO_WAIT: Duration = Duration::from_millis(250);

/// A lock manager over independent Redis masters (the Redlock algorithm).
pub struct QuorumManager {
    nodes: Vec<Arc<LockManager>>,
    config: LockConfig,
    closed: watch::Sender<bool>,
    queues: Arc<KeyQueues>,
}

/// The outcome of one quorum attempt.
enum Vote {
    /// A majority granted it in time.
    Won(Grant),
    /// Not granted: the smallest remaining TTL among the refusals (if any),
    /// and whether some masters had granted it (a split vote).
    Lost { pttl_ms: Option<u64>, split: bool },
}

/// Node `i` and what went wrong there.
type Failure = (usize, Error);

/// Sorts the masters' results (in node order) into the answers and the
/// failures (each with its node's index).
fn tally<T>(results: Vec<Result<T>>) -> (Vec<T>, Vec<Failure>) {
    let mut answers = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(answer) => answers.push(answer),
            Err(e) => failures.push((i, e)),
        }
    }
    (answers, failures)
}

impl QuorumManager {
    /// One single-instance manager per master; nothing connects yet.
    pub fn new(nodes: Vec<ConnectionConfig>, config: LockConfig) -> Result<Self> {
        if nodes.is_empty() {
            return Err(Error::invalid(
                "argument \"redis\": Redlock needs at least one Redis master (an array of URLs)",
            ));
        }
        check_mode(&config)?;
        let nodes = nodes
            .into_iter()
            .map(|c| LockManager::new(c, config.clone()).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(QuorumManager {
            nodes,
            config,
            closed: watch::Sender::new(false),
            queues: Arc::new(KeyQueues::default()),
        })
    }

    pub fn config(&self) -> &LockConfig {
        &self.config
    }

    /// How many masters must agree: a majority.
    pub fn quorum(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Closes every master's connection; pending calls end with
    /// [`ErrorKind::Closed`].
    pub fn close(&self) {
        self.closed.send_replace(true);
        for node in &self.nodes {
            node.close();
        }
    }

    /// The error of an operation that fewer than a majority answered.
    fn no_quorum(&self, what: &str, answered: usize, failures: &[Failure]) -> Error {
        let details = failures
            .iter()
            .map(|(i, e)| match e.has_context() {
                true => e.message().to_owned(),
                false => format!("{}: {}", self.nodes[*i].address(), e.message()),
            })
            .collect::<Vec<_>>()
            .join("; ");
        let closed = failures.iter().all(|(_, e)| e.kind() == ErrorKind::Closed);
        if closed && !failures.is_empty() {
            return Error::closed();
        }
        Error::new(
            ErrorKind::Connection,
            format!(
                "Redlock {what}: only {answered} of {} Redis masters answered, {} needed; \
                 failed: {details}",
                self.nodes.len(),
                self.quorum()
            ),
        )
    }

    /// Releases `key` for `id` on every master (undoing a failed or
    /// cancelled attempt sent at `sent_at` with `ttl_ms`). The releases are
    /// each master's cleanups (see [`crate::cleanup`]): on a master that
    /// timed out or failed they are tried again until it answers, within
    /// the attempt's ttl. This waits for their first try at most
    /// [`UNDO_WAIT`], so that on responsive masters the next attempt finds
    /// nothing of this one, and a dead master does not hold the caller up;
    /// it does not wait for the masters in `failed` (they did not answer the
    /// attempt, and would not answer the undo sooner).
    async fn undo(&self, key: &str, id: &str, ttl_ms: u64, sent_at: Instant, failed: &[usize]) {
        let queued = join_all(
            self.nodes
                .iter()
                .map(|node| node.undo_attempt(key, id, ttl_ms, sent_at)),
        )
        .await;
        let tried = queued
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .filter_map(|(_, done)| done);
        let _ = tokio::time::timeout(UNDO_WAIT, join_all(tried)).await;
    }

    /// Waits until every master's cleanups are done, for at most its
    /// `connectTimeout + commandTimeout`.
    pub async fn settle(&self) {
        join_all(self.nodes.iter().map(|n| n.settle())).await;
    }

    /// One attempt on every master at once.
    async fn attempt(&self, key: &str, id: &str, ttl_ms: u64, drift_ppm: u64) -> Result<Vote> {
        let sent_at = Instant::now();
        let results = join_all(self.nodes.iter().map(|n| n.try_once(key, id, ttl_ms))).await;
        let elapsed_ms = sent_at.elapsed().as_millis() as u64;
        let (answers, failures) = tally(results);
        let granted = answers
            .iter()
            .filter(|a| matches!(a, Attempt::Granted { .. }))
            .count();
        let refused = answers.len() - granted;
        // The smallest remaining TTL among the refusals that have one.
        let pttl_ms = answers
            .iter()
            .filter_map(|a| match a {
                Attempt::Refused { pttl_ms } if *pttl_ms >= 0 => Some(*pttl_ms as u64),
                _ => None,
            })
            .min();
        let in_budget = validity_ms_with(ttl_ms, drift_ppm) > elapsed_ms;
        if granted >= self.quorum() && in_budget {
            return Ok(Vote::Won(Grant {
                sent_at,
                ttl_ms,
                drift_ppm,
            }));
        }
        if granted > 0 || !failures.is_empty() {
            // A master that failed may still have taken it.
            let failed: Vec<usize> = failures.iter().map(|(i, _)| *i).collect();
            self.undo(key, id, ttl_ms, sent_at, &failed).await;
        }
        // 'refuse': a master that may evict lock keys refuses the lock.
        if let Some((_, e)) = failures
            .iter()
            .find(|(_, e)| e.kind() == ErrorKind::Eviction)
        {
            return Err(e.clone());
        }
        if granted + refused < self.quorum() {
            return Err(self.no_quorum("acquire", granted + refused, &failures));
        }
        Ok(Vote::Lost {
            pttl_ms,
            split: granted > 0,
        })
    }

    /// `evictionPolicy: 'refuse'`: fails if a master may evict lock keys,
    /// before any master is asked for the lock (each master's connection is
    /// checked once; see [`crate::eviction`]).
    async fn eviction_refusal(&self) -> Result<()> {
        if self.config.eviction_policy != EvictionPolicy::Refuse {
            return Ok(());
        }
        let refusals = join_all(self.nodes.iter().map(|n| n.eviction_refusal())).await;
        refusals
            .into_iter()
            .collect::<Result<Vec<()>>>()
            .map(|_| ())
    }

    /// Where the masters' eviction warnings go.
    pub fn on_warning(&self, sink: WarningSink) {
        for node in &self.nodes {
            node.on_warning(Arc::clone(&sink));
        }
    }

    /// Subscribes to the release messages of `key` on every master that
    /// accepts (best effort: polling still works without).
    async fn subscribe_all(&self, key: &str) -> Vec<Subscription> {
        join_all(self.nodes.iter().map(|n| n.subscribe(key)))
            .await
            .into_iter()
            .filter_map(|s| s.ok())
            .collect()
    }

    /// Tries to take the lock of `resource_name` on a majority of the
    /// masters, waiting as in single-instance mode; see the module doc.
    pub async fn acquire(
        &self,
        resource_name: &str,
        options: Option<&LockOptions>,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Option<HeldLock>> {
        let started = Instant::now();
        let config = self.config.for_call(options)?;
        check_mode(&config)?;
        let key = config.key_for(resource_name)?;
        let mut stops = Stops::start(self.closed.subscribe(), cancel)?;
        self.eviction_refusal().await?;
        let patience = config.patience(started);

        // Waiters of one key in this process take turns (FIFO); only the
        // head asks the masters. A waiter whose retries ran out while queued
        // makes its last attempt anyway.
        let turn = Turn {
            ticket: self.queues.join(&key),
            head: None,
            attempts: 0,
        };
        let policy = Policy {
            // The releasing process publishes on each master as it releases
            // there: an attempt made after the first message only would meet
            // the others still locked (a split vote).
            wake_needed: self.quorum(),
            wake_filter: None,
            max_wait: None,
            drain_before_attempt: true,
            turn_only: false,
        };
        let mut attempter = RedlockAttempt {
            manager: self,
            key,
            ttl_ms: config.ttl_ms,
            drift_ppm: config.drift_ppm,
            retry_delay_ms: config.retry_delay_ms,
        };
        let granted = wait_for_grant(
            &mut attempter,
            &policy,
            &mut stops,
            patience,
            config.max_retries,
            turn,
        )
        .await?;
        let Some(granted) = granted else {
            return Ok(None);
        };
        let (id, grant) = granted.won;
        let delay_ms = started.elapsed().as_millis() as u64;
        let held = HeldLock::new(id, attempter.key, None, granted.attempts, delay_ms, grant);
        if self.is_closed() {
            let ttl_ms = held.ttl_ms();
            self.undo(&held.key, &held.id, ttl_ms, Instant::now(), &[])
                .await;
            return Err(Error::closed());
        }
        Ok(Some(held))
    }

    /// Keeps `held` alive from a Tokio task; see [`keepalive::spawn`].
    pub fn auto_extend(
        self: &Arc<Self>,
        held: Arc<HeldLock>,
        on_event: impl Fn(KeepAliveEvent) + Send + Sync + 'static,
    ) {
        keepalive::spawn(Arc::clone(self), held, on_event);
    }
}

impl Extender for QuorumManager {
    async fn extend_lock(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        self.extend(held, ttl_ms).await
    }

    fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}

/// Fair mode and `waitReplicas` need one server's queue or replicas.
fn check_mode(config: &LockConfig) -> Result<()> {
    if config.fair {
        return Err(Error::invalid(
            "option \"fair\" is not available with Redlock (several masters): \
             its queue lives in one Redis server",
        ));
    }
    if config.wait_replicas.is_some() {
        return Err(Error::invalid(
            "option \"waitReplicas\" is not available with Redlock (several masters): \
             the quorum of masters already stands in for replicas",
        ));
    }
    Ok(())
}
