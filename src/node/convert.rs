//! JS values to the core's types and back: the option objects napi reads
//! and the errors thrown to JS.

use crate::error::Error;
use crate::options::LockOptions;
use napi::bindgen_prelude::Buffer;
use napi::{Error as NapiError, Status};
use napi_derive::napi;

/// A core error as a thrown JS error (`[CODE] message`).
pub(crate) fn to_napi(err: Error) -> NapiError {
    NapiError::new(Status::GenericFailure, coded(&err))
}

/// completion (a thrown constructor error, an auto-extension event).
pub(crate) fn coded(err: &Error) -> String {
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
