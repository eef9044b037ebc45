//! The Node.js binding: the only module that uses napi.
//!
//! It converts JS values to the core's types and back, and runs the core's
//! futures on napi's Tokio runtime (one dispatcher task per manager).
//!
//! Calls cross the boundary cheaply: an operation is started by a plain
//! synchronous call carrying a request id that JS chose, and its outcome comes
//! back through one thread-safe callback per manager, in batches: all the
//! outcomes queued since the last call arrive in one call (see [`crate::completion::Outbox`]).
//! No per-call promise, callback or handle has to be created natively;
//! `index.js` keeps the promises. The callback is unreferenced (it does not
//! keep Node alive) except while `index.js` has requests in flight.
//!
//! A failed request's completion carries its error kind's number (the index
//! into `errorCodes()`) and its message; a thrown constructor error and an
//! auto-extension event carry `[CODE] message`. `lib/errors.js` turns either
//! into the matching exported error class. Nothing here panics on a user or Redis value, and a
//! panic in an operation would still complete its request with an error.

use crate::backend::Backend;
use crate::completion::{Outbox, Outcome};
use crate::error::Error;
use crate::manager::{KeepAliveEvent, LockManager};
use crate::options::{self, ConnectionConfig, LockConfig, LockOptions, TlsConfig};
use crate::quorum::QuorumManager;
use crate::sync::lock;
use napi::bindgen_prelude::{Float64Array, Function};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::Env;
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

mod convert;
mod dispatch;
mod outbox;

use convert::*;
use dispatch::*;
use outbox::*;

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
