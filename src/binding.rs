//! The Node.js binding: the only module that uses napi.
//!
//! It converts JS values to the core's types and back, and runs the core's
//! futures on napi's Tokio runtime (one dispatcher task per manager).
//!
//! Calls cross the boundary cheaply: an operation is started by a plain
//! synchronous call carrying a request id that JS chose, and its outcome comes
//! back through one thread-safe callback per manager, in batches: all the
//! outcomes queued since the last call arrive in one call (see [`Outbox`]).
//! No per-call promise, callback or handle has to be created natively;
//! `index.js` keeps the promises. The callback is unreferenced (it does not
//! keep Node alive) except while `index.js` has requests in flight.
//!
//! Errors cross as `[CODE] message`; `index.js` turns that into the matching
//! exported error class. Nothing here panics on a user or Redis value, and a
//! panic in an operation would still complete its request with an error.

use crate::backend::Backend;
use crate::completion::{LockInfo, Outbox, Outcome};
use crate::error::{Error, ErrorKind};
use crate::lock::HeldLock;
use crate::manager::{KeepAliveEvent, LockManager};
use crate::options::{self, ConnectionConfig, LockConfig, LockOptions, TlsConfig};
use crate::quorum::QuorumManager;
use crate::sync::lock;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use napi::bindgen_prelude::{Buffer, Float64Array, FnArgs, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Error as NapiError, Status};
use napi_derive::napi;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::sync::{mpsc, watch};

fn to_napi(err: Error) -> NapiError {
    NapiError::new(Status::GenericFailure, coded(&err))
}

/// The completion of a request that failed: the kind's number travels in
/// the record, so JS needs no parsing to find the code.
fn failed(err: &Error) -> Outcome {
    Outcome::Failed {
        kind: err.kind() as u32,
        message: err.message().to_owned(),
    }
}

/// Numbers per completion record (see [`crate::completion::Outbox`]).
#[napi]
pub const RECORD_LEN: u32 = 8;

/// The kinds of completion records, as `lib/completions.js` decodes them
/// (the same numbers as [`crate::completion::Kind`]).
#[napi]
pub enum OutcomeKind {
    Done = 0,
    False = 1,
    True = 2,
    Failed = 3,
    Lock = 4,
}

// The exported numbers are the encoder's.
const _: () = {
    use crate::completion::Kind;
    assert!(RECORD_LEN as usize == crate::completion::RECORD_LEN);
    assert!(OutcomeKind::Done as u32 == Kind::Done as u32);
    assert!(OutcomeKind::False as u32 == Kind::False as u32);
    assert!(OutcomeKind::True as u32 == Kind::True as u32);
    assert!(OutcomeKind::Failed as u32 == Kind::Failed as u32);
    assert!(OutcomeKind::Lock as u32 == Kind::Lock as u32);
};

/// The stable error codes, indexed by the kind number a failed completion
/// carries (`lib/errors.js` builds its table from this).
#[napi(js_name = "errorCodes")]
// Called only from JS (the napi registration is not compiled into tests).
#[cfg_attr(test, allow(dead_code))]
pub fn error_codes() -> Vec<String> {
    ErrorKind::ALL.iter().map(|k| k.code().to_owned()).collect()
}

/// `[CODE] message`: how an error crosses the boundary where it is not a
/// completion (a thrown constructor error, an auto-extension event).
fn coded(err: &Error) -> String {
    format!("[{}] {}", err.code(), err.message())
}

/// `waitReplicas` as JS gives it.
#[napi(object)]
pub struct WaitReplicasOptions {
    pub count: f64,
    pub timeout_ms: f64,
}

/// Where and how to reach Redis; `index.js` builds it from the user's URL,
/// options object or client.
#[napi(object)]
pub struct ConnectionOptions {
    /// One Redis server.
    pub url: Option<String>,
    /// Redlock: the URLs of independent masters.
    pub redlock: Option<Vec<String>>,
    /// Redis Cluster: seed node URLs.
    pub cluster: Option<Vec<String>>,
    /// Redis Sentinel: the Sentinels' URLs (`url` then carries the master's
    /// credentials and database) and the master's name.
    pub sentinels: Option<Vec<String>>,
    pub master_name: Option<String>,
    pub connect_timeout: Option<f64>,
    pub command_timeout: Option<f64>,
    pub tls: Option<TlsOptions>,
}

/// TLS settings of a `rediss://` connection; `index.js` turns the strings,
/// Buffers and arrays Node's `tls` module takes into PEM bytes.
#[napi(object)]
pub struct TlsOptions {
    pub ca: Option<Buffer>,
    pub cert: Option<Buffer>,
    pub key: Option<Buffer>,
    pub reject_unauthorized: Option<bool>,
}

/// The lock options of dist-lock 1.0 (`ttl`, `retryDelay`, `maxRetries`,
/// `keyPrefix`); missing ones take their default.
#[napi(object)]
pub struct ManagerOptions {
    pub ttl: Option<f64>,
    pub retry_delay: Option<f64>,
    pub max_retries: Option<f64>,
    pub key_prefix: Option<String>,
    pub wait_replicas: Option<WaitReplicasOptions>,
    /// Milliseconds of wall clock after which an acquire gives up.
    pub timeout: Option<f64>,
    /// FIFO order across processes.
    pub fair: Option<bool>,
    /// Clock-drift allowance, a fraction of the TTL.
    pub drift_factor: Option<f64>,
    /// `'warn'`, `'refuse'` or `'ignore'`: servers that may evict lock keys.
    pub eviction_policy: Option<String>,
}

impl From<ManagerOptions> for LockOptions {
    fn from(o: ManagerOptions) -> Self {
        LockOptions {
            ttl: o.ttl,
            retry_delay: o.retry_delay,
            max_retries: o.max_retries,
            key_prefix: o.key_prefix,
            wait_replicas: o.wait_replicas.map(|w| (w.count, w.timeout_ms)),
            timeout: o.timeout,
            fair: o.fair,
            drift_factor: o.drift_factor,
            eviction_policy: o.eviction_policy,
        }
    }
}

/// The effective configuration, for inspection and tests.
#[napi(object)]
pub struct EffectiveOptions {
    pub ttl: f64,
    pub retry_delay: f64,
    pub max_retries: f64,
    pub key_prefix: String,
    pub wait_replicas: Option<WaitReplicasOptions>,
    pub timeout: Option<f64>,
    pub fair: bool,
    pub drift_factor: f64,
    pub eviction_policy: String,
}

type CompletionArgs = FnArgs<(Float64Array, String)>;
type DoneCallback = ThreadsafeFunction<(), (), CompletionArgs, Status, false, true>;
type WarningArgs = FnArgs<(String, Option<String>, Option<f64>, String)>;
type WarningCallback = ThreadsafeFunction<WarningArgs, (), WarningArgs, Status, false, true>;
type KeepAliveArgs = FnArgs<(u32, Option<String>)>;
type KeepAliveCallback = ThreadsafeFunction<KeepAliveArgs, (), KeepAliveArgs, Status, false, true>;

/// State shared by a manager's requests.
struct Shared {
    manager: Backend,
    done: Mutex<DoneCallback>,
    /// Outcomes waiting for the callback call (shared with that callback).
    outbox: Arc<Mutex<Outbox>>,
    /// Abort switches of the acquires in progress that can be aborted.
    cancels: Mutex<HashMap<u32, watch::Sender<bool>>>,
    /// The locks JS holds, by handle.
    locks: Mutex<HashMap<u32, Arc<HeldLock>>>,
    next_handle: Mutex<u32>,
    /// Where requests go to be run (see [`dispatch`]); started on first use.
    dispatcher: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl Shared {
    /// Queues the outcome of request `id` for JS. The first outcome queued
    /// since JS last took the batch asks napi for a callback call; later
    /// ones join that batch.
    fn complete(&self, id: u32, outcome: Outcome) {
        let first = {
            let mut outbox = lock(&self.outbox);
            outbox.push(id, outcome);
            outbox.records.len() == crate::completion::RECORD_LEN
        };
        if first {
            lock(&self.done).call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn held(&self, handle: u32) -> Result<Arc<HeldLock>, Error> {
        lock(&self.locks)
            .get(&handle)
            .cloned()
            .ok_or_else(|| Error::new(crate::error::ErrorKind::LockLost, "the lock was released"))
    }

    fn register(&self, held: HeldLock) -> LockInfo {
        let handle = {
            let mut next = lock(&self.next_handle);
            *next = next.wrapping_add(1);
            *next
        };
        let info = LockInfo {
            handle,
            id: held.id.clone(),
            key: held.key.clone(),
            fencing_token: held.fencing_token.map(|t| t as f64),
            acquired_on_attempt: held.acquired_on_attempt as f64,
            acquire_delay: held.acquire_delay_ms as f64,
        };
        lock(&self.locks).insert(handle, Arc::new(held));
        info
    }
}

/// One request's work, run by its manager's dispatcher.
type Request = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the requests of one manager inside a single Tokio task, until the
/// manager is dropped and its last request has finished.
///
/// Why not a task per request: the commands of requests started in the same
/// JS tick should leave in one write. redis-rs sends what was queued for a
/// connection when its writer task runs, and Tokio runs a task that was just
/// woken before the next one spawned from outside, so one task per request
/// gave one write system call (and often a context switch) per command.
/// Polling all newly arrived requests in one go queues all their commands
/// before the writer runs.
async fn dispatch(mut incoming: mpsc::UnboundedReceiver<Request>) {
    let mut running = FuturesUnordered::new();
    let mut open = true;
    std::future::poll_fn(|cx| {
        while open {
            match incoming.poll_recv(cx) {
                Poll::Ready(Some(request)) => running.push(request),
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
        if !open && running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Runs `op` on the Tokio runtime and completes request `id` with its outcome
/// (a panic becomes an error outcome, so no request is left pending).
fn spawn_request<F>(shared: &Arc<Shared>, id: u32, op: F)
where
    F: Future<Output = Result<Outcome, Error>> + Send + 'static,
{
    let completer = Arc::clone(shared);
    let request: Request = Box::pin(async move {
        let outcome = match AssertUnwindSafe(op).catch_unwind().await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(err)) => failed(&err),
            Err(_) => internal(),
        };
        completer.complete(id, outcome);
    });
    let mut dispatcher = lock(&shared.dispatcher);
    let request = match dispatcher.as_ref() {
        Some(tx) => match tx.send(request) {
            Ok(()) => return,
            Err(mpsc::error::SendError(request)) => request,
        },
        None => request,
    };
    // First request, or the dispatcher is gone (the runtime was shut down
    // under it): start one.
    let (tx, rx) = mpsc::unbounded_channel();
    napi::bindgen_prelude::spawn(dispatch(rx));
    if tx.send(request).is_err() {
        shared.complete(id, internal());
    }
    *dispatcher = Some(tx);
}

/// The completion of a request whose task panicked or was lost.
fn internal() -> Outcome {
    failed(&Error::new(
        ErrorKind::Internal,
        "dist-lock failed internally (a bug)",
    ))
}

/// The Lua of the single-server acquire and release scripts, by name (for the
/// benchmark's reference row, which runs them over a plain JS client; not
/// part of the public API).
#[napi(js_name = "luaScripts")]
// Called only from JS (the napi registration is not compiled into tests).
#[cfg_attr(test, allow(dead_code))]
pub fn lua_scripts() -> HashMap<String, String> {
    [
        ("acquire", &*crate::scripts::ACQUIRE),
        ("release", &*crate::scripts::RELEASE),
    ]
    .into_iter()
    .map(|(name, script)| (name.to_owned(), script.source().to_owned()))
    .collect()
}

#[napi]
pub struct NativeLockManager {
    shared: Arc<Shared>,
}

#[napi]
impl NativeLockManager {
    /// `on_done(records, text)` receives the outcomes of requests in
    /// batches (see [`Outbox`] for the encoding; `lib/completions.js`
    /// decodes it).
    #[napi(
        constructor,
        ts_args_type = "connection: ConnectionOptions, options: ManagerOptions, onDone: (records: Float64Array, text: string) => void"
    )]
    pub fn new(
        connection: ConnectionOptions,
        options: ManagerOptions,
        on_done: Function<'_, CompletionArgs, ()>,
    ) -> napi::Result<Self> {
        let outbox = Arc::new(Mutex::new(Outbox::default()));
        let batch = Arc::clone(&outbox);
        let on_done: DoneCallback = on_done
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .callee_handled::<false>()
            .build_callback(move |_| {
                let Outbox { records, text } = std::mem::take(&mut *lock(&batch));
                Ok((Float64Array::new(records), text).into())
            })?;
        let tls = connection.tls.map(|t| TlsConfig {
            ca: t.ca.map(|b| b.to_vec()),
            cert: t.cert.map(|b| b.to_vec()),
            key: t.key.map(|b| b.to_vec()),
            reject_unauthorized: t.reject_unauthorized.unwrap_or(true),
        });
        let (connect_timeout, command_timeout) =
            (connection.connect_timeout, connection.command_timeout);
        let with_tls = |c: ConnectionConfig| -> napi::Result<ConnectionConfig> {
            match &tls {
                Some(tls) => c.with_tls(tls.clone()).map_err(to_napi),
                None => Ok(c),
            }
        };
        let node = |url: String| -> napi::Result<ConnectionConfig> {
            with_tls(ConnectionConfig::new(url, connect_timeout, command_timeout).map_err(to_napi)?)
        };
        let config = LockConfig::from_options(&options.into()).map_err(to_napi)?;
        let single = |c: ConnectionConfig| -> napi::Result<Backend> {
            Ok(Backend::Single(Arc::new(
                LockManager::new(c, config.clone()).map_err(to_napi)?,
            )))
        };
        let manager = if let Some(urls) = connection.redlock {
            let nodes = urls
                .into_iter()
                .map(node)
                .collect::<napi::Result<Vec<_>>>()?;
            Backend::Quorum(Arc::new(
                QuorumManager::new(nodes, config.clone()).map_err(to_napi)?,
            ))
        } else if let Some(seeds) = connection.cluster {
            single(with_tls(
                ConnectionConfig::cluster(seeds, connect_timeout, command_timeout)
                    .map_err(to_napi)?,
            )?)?
        } else if let Some(sentinels) = connection.sentinels {
            let url = connection
                .url
                .unwrap_or_else(|| "redis://sentinel-master".into());
            let master_name = connection.master_name.unwrap_or_default();
            single(with_tls(
                ConnectionConfig::sentinel(
                    url,
                    sentinels,
                    master_name,
                    connect_timeout,
                    command_timeout,
                )
                .map_err(to_napi)?,
            )?)?
        } else if let Some(url) = connection.url {
            single(node(url)?)?
        } else {
            return Err(to_napi(Error::invalid(
                "argument \"redis\": no Redis server given",
            )));
        };
        Ok(NativeLockManager {
            shared: Arc::new(Shared {
                manager,
                done: Mutex::new(on_done),
                outbox,
                cancels: Mutex::new(HashMap::new()),
                locks: Mutex::new(HashMap::new()),
                next_handle: Mutex::new(0),
                dispatcher: Mutex::new(None),
            }),
        })
    }

    #[napi(getter)]
    pub fn options(&self) -> EffectiveOptions {
        let c = self.shared.manager.config();
        EffectiveOptions {
            ttl: c.ttl_ms as f64,
            retry_delay: c.retry_delay_ms as f64,
            max_retries: match c.max_retries {
                options::Retries::Unlimited => -1.0,
                options::Retries::Limited(n) => n as f64,
            },
            key_prefix: c.key_prefix.clone(),
            wait_replicas: c.wait_replicas.map(|w| WaitReplicasOptions {
                count: w.count as f64,
                timeout_ms: w.timeout_ms as f64,
            }),
            timeout: c.timeout_ms.map(|t| t as f64),
            fair: c.fair,
            drift_factor: c.drift_ppm as f64 / 1_000_000.0,
            eviction_policy: c.eviction_policy.name().to_owned(),
        }
    }

    /// Keeps Node alive (`true`) while JS has requests in flight. (napi
    /// deprecates `refer`/`unref` in favour of clones, but a clone of a weak
    /// callback is weak too; these are `napi_ref/unref_threadsafe_function`.)
    #[napi]
    #[allow(deprecated)]
    pub fn set_active(&self, env: Env, active: bool) -> napi::Result<()> {
        let mut done = lock(&self.shared.done);
        if active {
            done.refer(&env)
        } else {
            done.unref(&env)
        }
    }

    /// Request `id`: acquire `resource_name`; completes with the lock, or with
    /// neither lock nor flag when the allowed attempts ran out. `options`
    /// (ttl, retryDelay, maxRetries, timeout, fair, waitReplicas) apply to
    /// this call only; a `keyPrefix` in them is refused. If `cancellable`,
    /// [`NativeLockManager::cancel`] with the same id aborts it.
    #[napi]
    pub fn acquire(
        &self,
        id: u32,
        resource_name: String,
        options: Option<ManagerOptions>,
        cancellable: Option<bool>,
    ) {
        let options: Option<LockOptions> = options.map(Into::into);
        let manager_only = options.as_ref().and_then(|o| {
            (o.key_prefix.is_some().then_some("keyPrefix"))
                .or(o.eviction_policy.is_some().then_some("evictionPolicy"))
        });
        if let Some(name) = manager_only {
            let err = Error::invalid(format!(
                "option \"{name}\" can only be given to the lock manager, not to one acquire"
            ));
            self.shared.complete(id, failed(&err));
            return;
        }
        let cancel = if cancellable == Some(true) {
            let (tx, rx) = watch::channel(false);
            lock(&self.shared.cancels).insert(id, tx);
            Some(rx)
        } else {
            None
        };
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            let result = shared
                .manager
                .acquire(&resource_name, options.as_ref(), cancel)
                .await;
            lock(&shared.cancels).remove(&id);
            Ok(match result? {
                Some(held) => Outcome::Lock(shared.register(held)),
                None => Outcome::Done,
            })
        });
    }

    /// Request `id`: completes once the cleanups behind attempts that failed
    /// on the connection are done, or after `connectTimeout +
    /// commandTimeout` at most (`index.js` sends it after such a failure, so
    /// that Node stays alive for them, within that bound).
    #[napi]
    pub fn settle(&self, id: u32) {
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            shared.manager.settle().await;
            Ok(Outcome::Done)
        });
    }

    /// Aborts acquire request `id` (if still in progress).
    #[napi]
    pub fn cancel(&self, id: u32) {
        if let Some(switch) = lock(&self.shared.cancels).get(&id) {
            switch.send_replace(true);
        }
    }

    /// Request `id`: whether anyone holds the lock of `resource_name`.
    #[napi]
    pub fn is_locked(&self, id: u32, resource_name: String) {
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            Ok(Outcome::Flag(
                shared.manager.is_locked(&resource_name).await?,
            ))
        });
    }

    /// Request `id`: release lock `handle`; completes with `true` if released,
    /// `false` if it was no longer ours. The handle is then forgotten.
    #[napi]
    pub fn release(&self, id: u32, handle: u32) {
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            let Ok(held) = shared.held(handle) else {
                return Ok(Outcome::Flag(false));
            };
            let released = shared.manager.release(&held).await?;
            lock(&shared.locks).remove(&handle);
            Ok(Outcome::Flag(released))
        });
    }

    /// Request `id`: reset lock `handle`'s TTL to `seconds`; fails with
    /// `ELOCKLOST` if it is not held any more.
    #[napi]
    pub fn extend(&self, id: u32, handle: u32, seconds: f64) {
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            let ttl_ms = options::extend_ttl_ms(seconds)?;
            let held = shared.held(handle)?;
            shared.manager.extend(&held, ttl_ms).await?;
            Ok(Outcome::Done)
        });
    }

    /// Request `id`: whether Redis still holds lock `handle` for us.
    #[napi]
    pub fn is_held(&self, id: u32, handle: u32) {
        let shared = Arc::clone(&self.shared);
        spawn_request(&self.shared, id, async move {
            let held = match shared.held(handle) {
                Ok(held) => held,
                Err(_) => return Ok(Outcome::Flag(false)),
            };
            Ok(Outcome::Flag(shared.manager.is_held(&held).await?))
        });
    }

    /// Milliseconds lock `handle` is surely still held; negative once it ran
    /// out (or if the handle is unknown).
    #[napi]
    pub fn remaining_validity(&self, handle: u32) -> f64 {
        match self.shared.held(handle) {
            Ok(held) => held.remaining_validity_ms(),
            Err(_) => -1.0,
        }
    }

    /// Starts auto-extension of lock `handle`; `on_event(kind, message)` is
    /// called with kind 0 after each extension, 1 with `[CODE] message`
    /// after a failed attempt (retried), and 2 with `[CODE] message` once if
    /// the lock is lost. Weak: never keeps Node alive.
    #[napi(
        ts_args_type = "handle: number, onEvent: (kind: number, message: string | null) => void"
    )]
    pub fn auto_extend(&self, handle: u32, on_event: KeepAliveCallback) {
        let Ok(held) = self.shared.held(handle) else {
            return;
        };
        let manager = self.shared.manager.clone();
        // Called on the JS thread: enter napi's Tokio runtime to spawn.
        napi::bindgen_prelude::within_runtime_if_available(|| {
            manager.auto_extend(held, move |event: KeepAliveEvent| {
                let args = match event {
                    KeepAliveEvent::Extended => (0, None),
                    KeepAliveEvent::Failed(err) => (1, Some(coded(&err))),
                    KeepAliveEvent::Lost(err) => (2, Some(coded(&err))),
                };
                on_event.call(args.into(), ThreadsafeFunctionCallMode::NonBlocking);
            });
        });
    }

    /// `on_warning(server, policy, maxmemory, message)` is called for each
    /// server found to evict keys (`policy` and `maxmemory` are null if its
    /// policy could not be read); see `evictionPolicy`. Weak: never keeps
    /// Node alive.
    #[napi(
        ts_args_type = "onWarning: (server: string, policy: string | null, maxmemory: number | null, message: string) => void"
    )]
    pub fn on_warning(&self, on_warning: WarningCallback) {
        self.shared
            .manager
            .on_warning(Arc::new(move |w: crate::eviction::Warning| {
                let args = (w.server, w.policy, w.maxmemory.map(|m| m as f64), w.message);
                on_warning.call(args.into(), ThreadsafeFunctionCallMode::NonBlocking);
            }));
    }

    /// Forgets lock `handle` whose `Lock` object was garbage-collected
    /// unreleased: its auto-extension stops and it expires after its TTL.
    #[napi]
    pub fn drop_lock(&self, handle: u32) {
        if let Some(held) = lock(&self.shared.locks).remove(&handle) {
            held.mark_released();
        }
    }

    #[napi]
    pub fn close(&self) {
        self.shared.manager.close();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.shared.manager.is_closed()
    }
}

/// One Tokio worker thread: the work per request is tiny, and one worker
/// saves the cross-thread hand-offs of a work-stealing pool.
#[napi_derive::module_init]
fn init() {
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
