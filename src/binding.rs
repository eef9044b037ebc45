//! The Node.js binding: the only module that uses napi.
//!
//! It converts JS values to the core's types and back, and runs the core's
//! futures on napi's Tokio runtime. Errors cross the boundary as a rejected
//! promise whose message starts with `[CODE] `; `index.js` turns that into the
//! matching exported error class. Nothing here panics: every conversion of a
//! user or Redis value is checked.

use crate::config::{self, ConnectionConfig, LockConfig, LockOptions};
use crate::error::Error;
use crate::lock::Grant;
use crate::manager::LockManager;
use napi::{Error as NapiError, Status};
use napi_derive::napi;
use std::sync::Arc;

fn to_napi(err: Error) -> NapiError {
    NapiError::new(
        Status::GenericFailure,
        format!("[{}] {}", err.code(), err.message()),
    )
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
}

/// A granted lock, as `index.js` wraps it into a `Lock`.
#[napi(object)]
pub struct NativeGrant {
    pub id: String,
    pub key: String,
    pub acquired_on_attempt: f64,
    pub acquire_delay: f64,
}

impl From<Grant> for NativeGrant {
    fn from(g: Grant) -> Self {
        NativeGrant {
            id: g.id,
            key: g.key,
            acquired_on_attempt: g.acquired_on_attempt as f64,
            acquire_delay: g.acquire_delay_ms as f64,
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
}

#[napi]
pub struct NativeLockManager {
    inner: Arc<LockManager>,
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
        let config = LockConfig::from_options(&LockOptions {
            ttl: options.ttl,
            retry_delay: options.retry_delay,
            max_retries: options.max_retries,
            key_prefix: options.key_prefix,
        })
        .map_err(to_napi)?;
        let inner = LockManager::new(connection, config).map_err(to_napi)?;
        Ok(NativeLockManager {
            inner: Arc::new(inner),
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
        }
    }

    /// Resolves to the grant, or `null` when the allowed attempts ran out.
    #[napi]
    pub async fn acquire(&self, resource_name: String) -> napi::Result<Option<NativeGrant>> {
        let manager = Arc::clone(&self.inner);
        let grant = manager.acquire(&resource_name).await.map_err(to_napi)?;
        Ok(grant.map(NativeGrant::from))
    }

    /// Resolves to `true` if released, `false` if the lock was no longer ours.
    #[napi]
    pub async fn release(&self, key: String, id: String) -> napi::Result<bool> {
        let manager = Arc::clone(&self.inner);
        manager.release(&key, &id).await.map_err(to_napi)
    }

    /// Resets the TTL to `seconds`; rejects with `ELOCKLOST` if not held.
    #[napi]
    pub async fn extend(&self, key: String, id: String, seconds: f64) -> napi::Result<()> {
        let ttl_ms = config::extend_ttl_ms(seconds).map_err(to_napi)?;
        let manager = Arc::clone(&self.inner);
        manager.extend(&key, &id, ttl_ms).await.map_err(to_napi)
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
