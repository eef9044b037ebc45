//! The lock manager: one Redis connection, the acquisition loop, and the
//! owner-checked release and extension of granted locks.
//!
//! All Redis traffic goes through a redis-rs `ConnectionManager`, created on
//! first use: it multiplexes concurrent commands over one connection and
//! reconnects after the connection drops, so the same manager works again
//! once Redis is back. Every command is bounded in time
//! (`connectTimeout + commandTimeout`), so no call hangs on an unreachable or
//! stalled server.

use crate::cleanup::{Cleanups, Job};
use crate::clock;
use crate::config::{
    ConnectionConfig, LockConfig, LockOptions, WaitReplicas, QUEUE_ENTRY_MS, QUEUE_REFRESH_MS,
};
use crate::connection::{Conn, Connector, Mode};
use crate::error::{Error, ErrorKind, Result};
use crate::eviction::{Due, EvictionGate};
use crate::fencing;
pub use crate::keepalive::KeepAliveEvent;
use crate::keepalive::{self, Extender};
use crate::lock::{self, Attempt, Grant, HeldLock};
use crate::notifier::{Notifier, Subscription};
use crate::wait::{wait_for_grant, Attempter, KeyQueues, Outcome, Policy, Stops, Turn};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

mod attempt;
mod eviction_check;

use attempt::SingleAttempt;

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

/// `WAIT` must answer within the command timeout: its own timeout must be
/// shorter.
fn check_wait_replicas(config: &LockConfig, connector: &Connector) -> Result<()> {
    let connection = connector.config();
    if config.wait_replicas.is_some() && connector.is_cluster() {
        return Err(Error::invalid(
            "option \"waitReplicas\" is not available on a Redis Cluster: WAIT would go to \
             a node other than the lock's",
        ));
    }
    match config.wait_replicas {
        Some(w) if w.timeout_ms >= connection.command_timeout_ms => Err(Error::invalid(format!(
            "option \"waitReplicas.timeoutMs\" ({} ms) must be shorter than \"commandTimeout\" ({} ms)",
            w.timeout_ms, connection.command_timeout_ms
        ))),
        _ => Ok(()),
    }
}

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

    /// One acquisition attempt. If the caller aborts or the manager closes
    /// while it is in flight, or it fails on the connection (no answer in
    /// time, connection lost) after its command may have been written, a
    /// release (and fair-queue exit) is queued behind it, since Redis may
    /// still run it; see [`crate::cleanup`]. An abort or close waits for that
    /// release at most [`CLEANUP_WAIT`]; a connection error does not wait.
    async fn attempt(
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
    async fn granted(
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

    /// Leaves the fair queue after giving up (best effort: an entry left
    /// behind expires by itself).
    async fn leave_queue(&self, config: &LockConfig, key: &str, id: &str) {
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
    async fn cleanup(
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
    fn clean_up_behind(
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

    /// `WAIT count timeout` after a grant; if fewer replicas acknowledged it,
    /// releases the lock (a failover could forget it) and fails.
    ///
    /// `WAIT` counts the replicas that acknowledged every write made so far on
    /// this connection, which includes the grant. Meanwhile it holds up the
    /// other commands sent on the shared connection, for at most `timeoutMs`.
    async fn wait_for_replicas(&self, held: &HeldLock, wait: WaitReplicas) -> Result<()> {
        // Not retried: WAIT on a new connection, which wrote nothing, would
        // count replicas that never saw the grant.
        let acked = self
            .run_with(
                |mut c| async move {
                    let n: i64 = redis::cmd("WAIT")
                        .arg(wait.count)
                        .arg(wait.timeout_ms)
                        .query_async(&mut c)
                        .await?;
                    Ok(n)
                },
                false,
                false,
            )
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

    fn lock_state(&self) -> MutexGuard<'_, State> {
        // The guarded section never panics, but a poisoned lock must not
        // turn into a panic either.
        crate::sync::lock(&self.state)
    }

    /// The shared connection, created on first use.
    async fn connection(&self) -> Result<Conn> {
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
    fn in_context(&self, err: Error) -> Error {
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
    fn reconnect_later(&self) {
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
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
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
    async fn run_gated<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnMut(Conn) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.run_with(op, true, true).await
    }

    /// [`LockManager::run`], with the second try only if `retry`, and the
    /// eviction check if `gated`.
    async fn run_with<T, F, Fut>(&self, mut op: F, retry: bool, gated: bool) -> Result<T>
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

impl Extender for LockManager {
    async fn extend_lock(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        self.extend(held, ttl_ms).await
    }

    fn closed_signal(&self) -> watch::Receiver<bool> {
        self.closed.subscribe()
    }
}
