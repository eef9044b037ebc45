//! The Node.js binding: the only module that uses napi.
//!
//! It converts JS values to the core's types and back, and runs the core's
//! futures on napi's Tokio runtime. Errors cross the boundary as a rejected
//! promise whose message starts with `[CODE] `; `index.js` turns that into the
//! matching exported error class. Nothing here panics: every conversion of a
//! user or Redis value is checked.

use crate::config::{self, ConnectionConfig, LockConfig, LockOptions};
use crate::error::Error;
use crate::lock::HeldLock;
use crate::manager::LockManager;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Error as NapiError, Status};
use napi_derive::napi;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

fn to_napi(err: Error) -> NapiError {
    NapiError::new(Status::GenericFailure, coded(&err))
}

/// `[CODE] message`: how an error crosses the boundary.
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
    pub url: String,
    pub connect_timeout: Option<f64>,
    pub command_timeout: Option<f64>,
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
}

#[napi]
pub struct NativeLockManager {
    inner: Arc<LockManager>,
    /// Abort switches of acquires in progress, by the request id JS chose.
    cancels: Arc<Mutex<HashMap<u32, watch::Sender<bool>>>>,
}

/// The abort switch of request `id`, created by whichever of `acquire` and
/// `cancel` comes first (an abort may reach us before the acquire starts).
fn cancel_switch(
    cancels: &Mutex<HashMap<u32, watch::Sender<bool>>>,
    id: u32,
) -> watch::Receiver<bool> {
    let mut map = cancels.lock().unwrap_or_else(|p| p.into_inner());
    map.entry(id)
        .or_insert_with(|| watch::Sender::new(false))
        .subscribe()
}

#[napi]
impl NativeLockManager {
    #[napi(constructor)]
    pub fn new(connection: ConnectionOptions, options: ManagerOptions) -> napi::Result<Self> {
        let connection = ConnectionConfig::new(
            connection.url,
            connection.connect_timeout,
            connection.command_timeout,
        )
        .map_err(to_napi)?;
        let config = LockConfig::from_options(&options.into()).map_err(to_napi)?;
        let inner = LockManager::new(connection, config).map_err(to_napi)?;
        Ok(NativeLockManager {
            inner: Arc::new(inner),
            cancels: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    #[napi(getter)]
    pub fn options(&self) -> EffectiveOptions {
        let c = self.inner.config();
        EffectiveOptions {
            ttl: c.ttl_ms as f64,
            retry_delay: c.retry_delay_ms as f64,
            max_retries: match c.max_retries {
                config::Retries::Unlimited => -1.0,
                config::Retries::Limited(n) => n as f64,
            },
            key_prefix: c.key_prefix.clone(),
            wait_replicas: c.wait_replicas.map(|w| WaitReplicasOptions {
                count: w.count as f64,
                timeout_ms: w.timeout_ms as f64,
            }),
            timeout: c.timeout_ms.map(|t| t as f64),
            fair: c.fair,
        }
    }

    /// Resolves to the lock, or `null` when the allowed attempts ran out.
    /// `options` (ttl, retryDelay, maxRetries, waitReplicas) apply to this
    /// call only; a `keyPrefix` in them is refused.
    #[napi]
    /// `request_id` (chosen by JS) lets [`NativeLockManager::cancel`] abort it.
    pub async fn acquire(
        &self,
        resource_name: String,
        options: Option<ManagerOptions>,
        request_id: Option<u32>,
    ) -> napi::Result<Option<NativeLock>> {
        let options: Option<LockOptions> = options.map(Into::into);
        if options.as_ref().is_some_and(|o| o.key_prefix.is_some()) {
            return Err(to_napi(Error::invalid(
                "option \"keyPrefix\" can only be given to the lock manager, not to one acquire",
            )));
        }
        let manager = Arc::clone(&self.inner);
        let cancel = request_id.map(|id| cancel_switch(&self.cancels, id));
        let result = manager
            .acquire(&resource_name, options.as_ref(), cancel)
            .await;
        if let Some(id) = request_id {
            self.cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        }
        let held = result.map_err(to_napi)?;
        Ok(held.map(|held| NativeLock {
            manager,
            held: Arc::new(held),
        }))
    }

    /// Whether anyone holds the lock of `resourceName`.
    #[napi]
    pub async fn is_locked(&self, resource_name: String) -> napi::Result<bool> {
        let manager = Arc::clone(&self.inner);
        manager.is_locked(&resource_name).await.map_err(to_napi)
    }

    /// Aborts the acquire started with `request_id`.
    #[napi]
    pub fn cancel(&self, request_id: u32) {
        cancel_switch(&self.cancels, request_id);
        if let Some(switch) = self
            .cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&request_id)
        {
            switch.send_replace(true);
        }
    }

    /// Forgets the abort switch of a settled request (an abort that came too
    /// late left one behind).
    #[napi]
    pub fn forget(&self, request_id: u32) {
        self.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request_id);
    }

    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// A held lock. `index.js` wraps it into the public `Lock`.
#[napi]
pub struct NativeLock {
    manager: Arc<LockManager>,
    held: Arc<HeldLock>,
}

#[napi]
impl NativeLock {
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.held.id.clone()
    }

    #[napi(getter)]
    pub fn key(&self) -> String {
        self.held.key.clone()
    }

    /// Exact as a JS number up to 2^53 − 1.
    #[napi(getter)]
    pub fn fencing_token(&self) -> f64 {
        self.held.fencing_token as f64
    }

    #[napi(getter)]
    pub fn acquired_on_attempt(&self) -> f64 {
        self.held.acquired_on_attempt as f64
    }

    #[napi(getter)]
    pub fn acquire_delay(&self) -> f64 {
        self.held.acquire_delay_ms as f64
    }

    #[napi(getter)]
    pub fn ttl(&self) -> f64 {
        self.held.ttl_ms() as f64
    }

    /// Milliseconds the lock is surely still held; negative once it ran out.
    #[napi]
    pub fn remaining_validity(&self) -> f64 {
        self.held.remaining_validity_ms()
    }

    /// Resolves to `true` if released, `false` if the lock was no longer ours.
    #[napi]
    pub async fn release(&self) -> napi::Result<bool> {
        self.manager.release(&self.held).await.map_err(to_napi)
    }

    /// Resets the TTL to `seconds`; rejects with `ELOCKLOST` if not held.
    #[napi]
    pub async fn extend(&self, seconds: f64) -> napi::Result<()> {
        let ttl_ms = config::extend_ttl_ms(seconds).map_err(to_napi)?;
        self.manager
            .extend(&self.held, ttl_ms)
            .await
            .map_err(to_napi)
    }

    /// Whether Redis still holds the lock for us.
    #[napi]
    pub async fn is_held(&self) -> napi::Result<bool> {
        self.manager.is_held(&self.held).await.map_err(to_napi)
    }

    /// Starts auto-extension; `on_lost` is called once with `[CODE] message`
    /// if the lock is lost. The callback is weak: it never keeps Node alive.
    #[napi]
    pub fn auto_extend(
        &self,
        on_lost: ThreadsafeFunction<String, (), String, Status, false, true>,
    ) {
        // Called on the JS thread: enter napi's Tokio runtime to spawn.
        napi::bindgen_prelude::within_runtime_if_available(|| {
            self.manager
                .auto_extend(Arc::clone(&self.held), move |err: Error| {
                    on_lost.call(coded(&err), ThreadsafeFunctionCallMode::NonBlocking);
                });
        });
    }
}
