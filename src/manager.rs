//! The lock manager: one Redis connection, the acquisition loop, and the
//! owner-checked release and extension of granted locks.
//!
//! All Redis traffic goes through a redis-rs `ConnectionManager`, created on
//! first use: it multiplexes concurrent commands over one connection and
//! reconnects after the connection drops, so the same manager works again
//! once Redis is back. Every command is bounded in time
//! (`connectTimeout + commandTimeout`), so no call hangs on an unreachable or
//! stalled server.

use crate::cleanup::Cleanups;
use crate::clock;
use crate::connection::{Conn, Connector};
use crate::error::{Error, ErrorKind, Result};
use crate::eviction::EvictionGate;
use crate::fencing;
pub use crate::keepalive::KeepAliveEvent;
use crate::keepalive::{self, Extender};
use crate::lock::{self, Attempt, Grant, HeldLock};
use crate::notifier::{Notifier, Subscription};
use crate::options::Mode;
use crate::options::{ConnectionConfig, LockConfig, LockOptions, QUEUE_REFRESH_MS};
use crate::wait::{wait_for_grant, Attempter, KeyQueues, Outcome, Policy, Stops, Turn};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod attempt;
mod cleanups;
mod eviction_check;
mod replicas;
mod session;

use attempt::SingleAttempt;
use replicas::check_wait_replicas;

/// The connection, opened lazily and dropped on close.
enum State {
    Idle,
    Open(Conn),
    Closed,
}

/// Takes, extends and releases locks in one Redis instance.
pub struct LockManager {
    config: LockConfig,
    connection: ConnectionConfig,
    connector: Arc<Connector>,
    state: Mutex<State>,
    /// Serialises the opening of connections that cannot open lazily.
    connecting: tokio::sync::Mutex<()>,
    /// Flips to `true` on [`LockManager::close`]; waiting acquires watch it.
    closed: watch::Sender<bool>,
    notifier: Arc<Notifier>,
    queues: Arc<KeyQueues>,
    /// Whether the server may evict lock keys, checked once per connection
    /// (see [`eviction_check`]).
    eviction: Arc<EvictionGate>,
    /// Releases behind attempts whose outcome is unknown.
    cleanups: Cleanups,
}

/// How long an aborted or closed acquire waits for its cleanup commands
/// (an acquire that failed on the connection does not wait).
const CLEANUP_WAIT: Duration = Duration::from_millis(250);

/// The error of an operation that got no answer within `limit_ms`.
pub(crate) fn no_answer(limit_ms: u64) -> Error {
    Error::new(
        ErrorKind::Connection,
        format!("Redis connection failed: no answer within {limit_ms} ms"),
    )
}

/// A lock granted by an attempt sent at `sent_at`, to an acquire that
/// started at `started`.
fn held_lock(
    config: &LockConfig,
    started: Instant,
    id: String,
    key: String,
    fencing_token: u64,
    attempts: u64,
    sent_at: Instant,
) -> HeldLock {
    let delay_ms = started.elapsed().as_millis() as u64;
    let grant = Grant {
        sent_at,
        ttl_ms: config.ttl_ms,
        drift_ppm: config.drift_ppm,
    };
    HeldLock::new(id, key, Some(fencing_token), attempts, delay_ms, grant)
}

impl LockManager {
    /// Checks the connection URL; connects only when the first command is sent
    /// (so creating a manager never blocks and never fails on a down server).
    pub fn new(connection: ConnectionConfig, config: LockConfig) -> Result<Self> {
        let connector = Arc::new(Connector::new(connection.clone())?);
        check_wait_replicas(&config, &connector)?;
        let notifier = Notifier::new(
            Arc::clone(&connector),
            clock::duration_ms(connection.connect_timeout_ms),
        );
        let try_limit = Duration::from_millis(
            connection
                .connect_timeout_ms
                .saturating_add(connection.command_timeout_ms),
        );
        Ok(LockManager {
            connection,
            cleanups: Cleanups::new(try_limit),
            connector,
            state: Mutex::new(State::Idle),
            connecting: tokio::sync::Mutex::new(()),
            closed: watch::Sender::new(false),
            notifier: Arc::new(notifier),
            queues: Arc::new(KeyQueues::default()),
            eviction: Arc::new(EvictionGate::new(config.eviction_policy)),
            config,
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
        self.notifier.close();
    }

    /// Tries to take the lock of `resource_name` until it is granted
    /// (`Some`) or the caller's patience runs out (`None`).
    ///
    /// Waiters of one key in this manager queue in FIFO order; the head of the
    /// queue asks Redis, then waits for the first of: a release in this
    /// process, a release message from Redis, the holder's TTL running out,
    /// or `retryDelay` (the fallback poll). In fair mode a queue in Redis
    /// orders the heads of all processes.
    ///
    /// It gives up (`None`) at the first refusal once `maxRetries ×
    /// retryDelay` has passed and at least `maxRetries + 1` attempts were
    /// made (so never sooner, in wall time or attempts, than 1.0's polling;
    /// `maxRetries: 0` tries once), or when `timeout` has passed.
    /// `cancel` flipping to `true` ends it with [`ErrorKind::Aborted`],
    /// closing the manager with [`ErrorKind::Closed`]; either way nothing is
    /// left in Redis (an attempt in flight is followed by a release, and a
    /// fair-queue entry is removed). A Redis or connection error ends it with
    /// that error; it is never mistaken for contention.
    pub async fn acquire(
        &self,
        resource_name: &str,
        options: Option<&LockOptions>,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Option<HeldLock>> {
        let started = Instant::now();
        let config = self.config.for_call(options)?;
        check_wait_replicas(&config, &self.connector)?;
        let key = config.key_for(resource_name)?;
        if fencing::reserved(&config.key_prefix, &key) {
            return Err(Error::invalid(format!(
                "argument \"resourceName\" is reserved: with this keyPrefix, \"{key}\" is the \
                 name of a fencing-token key"
            )));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut stops = Stops::start(self.closed.subscribe(), cancel)?;
        let patience = config.patience(started);

        // The place in the local queue is taken now, before the first await,
        // so that grants follow the order of the calls. First in line, with
        // no lock of the key held here: try at once (one round trip). (Not in
        // fair mode: there the head's first attempt queues in Redis, which
        // the waiting loop keeps alive.)
        let ticket = self.queues.join(&key);
        let mut head = None;
        let held_here = ticket.queue.held_here_until();
        if !config.fair && held_here.is_none_or(|until| until <= Instant::now()) {
            head = ticket.head_now();
        }
        let mut attempter = SingleAttempt {
            manager: self,
            config,
            key,
            id,
            last_conn: None,
        };
        let mut attempts: u64 = 0;
        if head.is_some() {
            attempts += 1;
            match attempter.attempt(&mut stops).await? {
                Outcome::Granted { won, held_until } => {
                    ticket.queue.set_held_here_until(Some(held_until));
                    drop(ticket);
                    return attempter.finish(won, attempts, started).await;
                }
                Outcome::Refused { .. } => {
                    let now = Instant::now();
                    let config = &attempter.config;
                    if patience.deadline.is_some_and(|t| now >= t)
                        || config.max_retries.spent(attempts, patience.give_up_at, now)
                    {
                        return Ok(None);
                    }
                }
            }
        }

        // Waiting: in its own (boxed) future, so that the uncontended path
        // above stays small to create and to move.
        let turn = Turn {
            ticket,
            head,
            attempts,
        };
        Box::pin(async move {
            let id = attempter.id.clone();
            let fair = attempter.config.fair;
            let policy = Policy {
                wake_needed: 1,
                wake_filter: fair.then_some(id.as_str()),
                max_wait: fair.then_some(Duration::from_millis(QUEUE_REFRESH_MS)),
                drain_before_attempt: false,
                turn_only: true,
            };
            let max_retries = attempter.config.max_retries;
            let granted = wait_for_grant(
                &mut attempter,
                &policy,
                &mut stops,
                patience,
                max_retries,
                turn,
            )
            .await?;
            match granted {
                Some(g) => attempter.finish(g.won, g.attempts, started).await,
                None => Ok(None),
            }
        })
        .await
    }

    /// Owner-checked release; see [`lock::release`]. Stops auto-extension.
    /// A second call resolves `false` without asking Redis.
    pub async fn release(&self, held: &HeldLock) -> Result<bool> {
        if !held.mark_released() {
            return Ok(false);
        }
        let (key, id, token) = (&held.key, &held.id, held.token_key.as_deref());
        let result = self
            .run(|mut c| async move {
                lock::release(&mut c, key, id, token, self.connector.publish()).await
            })
            .await;
        match &result {
            Ok(_) => self.queues.released(&held.key),
            Err(_) => held.unmark_released(),
        }
        result
    }

    /// Owner-checked extension to `ttl_ms`; see [`lock::extend`]. Renews the
    /// lock's validity from the moment the command is sent.
    pub async fn extend(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        if held.is_released() {
            return Err(lock::lost(&held.key, "it was released"));
        }
        let (key, id, token) = (&held.key, &held.id, held.token_key.as_deref());
        let sent_at = Instant::now();
        self.run(|mut c| async move { lock::extend(&mut c, key, id, token, ttl_ms).await })
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

    /// One acquisition attempt for `key` with the given `id`, without
    /// waiting, queueing or fencing token (a master's part of a Redlock
    /// quorum attempt).
    pub async fn try_once(&self, key: &str, id: &str, ttl_ms: u64) -> Result<Attempt> {
        self.run_gated(
            |mut c| async move { lock::try_acquire_plain(&mut c, key, id, ttl_ms).await },
        )
        .await
    }

    /// Owner-checked release of `key` if it holds `id`.
    pub async fn release_key(&self, key: &str, id: &str) -> Result<bool> {
        self.run(|mut c| async move {
            lock::release(&mut c, key, id, None, self.connector.publish()).await
        })
        .await
    }

    /// Owner-checked extension of `key` to `ttl_ms` if it holds `id`.
    pub async fn extend_key(&self, key: &str, id: &str, ttl_ms: u64) -> Result<()> {
        self.run(|mut c| async move { lock::extend(&mut c, key, id, None, ttl_ms).await })
            .await
    }

    /// Whether `key` holds `id`.
    pub async fn is_held_key(&self, key: &str, id: &str) -> Result<bool> {
        self.run(|mut c| async move { lock::is_held(&mut c, key, id).await })
            .await
    }

    /// Whether `key` exists.
    pub async fn is_locked_key(&self, key: &str) -> Result<bool> {
        self.run(|mut c| async move { lock::is_locked(&mut c, key).await })
            .await
    }

    /// Subscribes to the release messages of `key`.
    pub async fn subscribe(&self, key: &str) -> Result<Subscription> {
        self.notifier.subscribe(&lock::channel(key)).await
    }

    /// Whether this manager talks to a Redis Cluster (one fencing counter per
    /// hash slot, not one per prefix).
    fn is_cluster(&self) -> bool {
        matches!(self.connection.mode, Mode::Cluster { .. })
    }

    /// The key that keeps the fencing token of a lock on `key`.
    fn token_key(&self, config: &LockConfig, key: &str) -> String {
        fencing::token_key(&config.key_prefix, key, self.is_cluster())
    }

    /// The server's address, without credentials, for error messages.
    pub fn address(&self) -> String {
        self.connection.address()
    }

    /// Whether anyone holds the lock of `resource_name`.
    pub async fn is_locked(&self, resource_name: &str) -> Result<bool> {
        let key = self.config.key_for(resource_name)?;
        let key = &key;
        self.run(|mut c| async move { lock::is_locked(&mut c, key).await })
            .await
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

impl Extender for LockManager {
    async fn extend_lock(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        self.extend(held, ttl_ms).await
    }

    fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}
