//! Options, their defaults and their validation.
//!
//! Every default of the library lives here (`DEFAULT_*`). Values arrive as the
//! JS numbers and strings the user passed (`f64`, `String`), already checked
//! for their type by the JS layer; this module checks ranges and turns them
//! into typed, unit-named values. Error messages name the option as the user
//! spelled it. The connection options are in [`connection`].

use crate::clock;
use crate::error::{Error, Result};

/// Time after which a lock releases itself, in milliseconds (`ttl`).
pub const DEFAULT_TTL_MS: u64 = 30_000;
/// Pause between two acquisition attempts, in milliseconds (`retryDelay`).
pub const DEFAULT_RETRY_DELAY_MS: u64 = 50;
/// Attempts after the first one (`maxRetries`); unlimited by default.
pub const DEFAULT_MAX_RETRIES: Retries = Retries::Unlimited;
/// Prefix of every lock key in Redis (`keyPrefix`).
pub const DEFAULT_KEY_PREFIX: &str = "lock:";
/// Bound on one attempt to open a connection to Redis (`connectTimeout`).
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 2_000;
/// Bound on the wait for the answer to one command (`commandTimeout`).
pub const DEFAULT_COMMAND_TIMEOUT_MS: u64 = 5_000;
/// Reconnection attempts after a failed connect before a command fails.
pub const RECONNECT_RETRIES: usize = 1;

/// Clock drift allowance of a lock's validity, as a fraction of its TTL
/// (the value the Redlock analysis uses), plus [`DRIFT_FIXED_MS`].
pub const DRIFT_FACTOR: f64 = 0.01;
/// Fixed part of the drift allowance, in milliseconds.
pub const DRIFT_FIXED_MS: u64 = 2;
/// Auto-extension renews a lock after a third of its TTL has passed.
pub const AUTO_EXTEND_DIVISOR: u64 = 3;
/// Pause between two extension attempts after one failed (at most; never
/// past the lock's validity).
pub const AUTO_EXTEND_RETRY_MS: u64 = 100;

/// How long an entry of the fair queue lives without being refreshed by
/// its waiter's next attempt: a waiter that crashed blocks the queue at most
/// this long.
pub const QUEUE_ENTRY_MS: u64 = 3_000;
/// A fair waiter refreshes its queue entry at least this often.
pub const QUEUE_REFRESH_MS: u64 = 1_000;

/// The largest integer a JS number holds exactly (`Number.MAX_SAFE_INTEGER`):
/// the upper bound of every millisecond value.
pub const MAX_MS: u64 = 9_007_199_254_740_991;
/// The longest lock key (prefix + resource name) accepted, in UTF-8 bytes.
pub const MAX_KEY_BYTES: usize = 64 * 1024;

/// What a manager does about a server that may evict lock keys
/// (`evictionPolicy`); see [`crate::eviction`].
pub const DEFAULT_EVICTION_POLICY: EvictionPolicy = EvictionPolicy::Warn;

/// `evictionPolicy`: how a server whose `maxmemory-policy` may evict keys is
/// treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Check, report each unsafe server, and lock there anyway.
    Warn,
    /// Check, and refuse to lock on an unsafe (or unreadable) server.
    Refuse,
    /// Do not check (no `INFO` is sent).
    Ignore,
}

impl EvictionPolicy {
    /// The option's value as the user spells it.
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::Warn => "warn",
            EvictionPolicy::Refuse => "refuse",
            EvictionPolicy::Ignore => "ignore",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        match value {
            "warn" => Ok(EvictionPolicy::Warn),
            "refuse" => Ok(EvictionPolicy::Refuse),
            "ignore" => Ok(EvictionPolicy::Ignore),
            other => Err(Error::invalid(format!(
                "option \"evictionPolicy\" must be 'warn', 'refuse' or 'ignore', got {:?}",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }
}

/// How many times a refused acquisition is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retries {
    /// Keep trying until the lock is granted (`maxRetries: -1`).
    Unlimited,
    /// Try again this many times after the first attempt (`0` = try once).
    Limited(u64),
}

impl Retries {
    /// Whether an acquisition that just got refused has used up its
    /// patience: `attempts` made, and `give_up_at` (start + maxRetries ×
    /// retryDelay) reached.
    pub fn spent(
        self,
        attempts: u64,
        give_up_at: Option<std::time::Instant>,
        now: std::time::Instant,
    ) -> bool {
        match (self, give_up_at) {
            (Retries::Limited(n), Some(at)) => attempts > n && now >= at,
            _ => false,
        }
    }

    /// Whether another attempt may follow `attempts_made` refused ones.
    pub fn allows_another(self, attempts_made: u64) -> bool {
        match self {
            Retries::Unlimited => true,
            Retries::Limited(n) => attempts_made <= n,
        }
    }
}

/// How long a lock is surely held after the command that set its TTL was
/// sent: the TTL less a drift allowance (`ttl · DRIFT_FACTOR + DRIFT_FIXED_MS`)
/// for the difference between our clock and Redis's.
pub fn validity_ms(ttl_ms: u64) -> u64 {
    validity_ms_with(ttl_ms, DEFAULT_DRIFT_PPM)
}

/// [`validity_ms`] with a drift factor of `drift_ppm` millionths of the TTL
/// (option `driftFactor`).
pub fn validity_ms_with(ttl_ms: u64, drift_ppm: u64) -> u64 {
    let drift = (ttl_ms as u128 * drift_ppm as u128 / 1_000_000) as u64 + DRIFT_FIXED_MS;
    ttl_ms.saturating_sub(drift)
}

/// [`DRIFT_FACTOR`] in millionths.
pub const DEFAULT_DRIFT_PPM: u64 = (DRIFT_FACTOR * 1_000_000.0) as u64;

/// `waitReplicas`: after a grant, wait until this many replicas acknowledged
/// the write, within `timeout_ms`, or release the lock and fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    pub count: u64,
    pub timeout_ms: u64,
}

/// The lock options as the user gave them; `None` takes the default (or, for
/// per-call options, the manager's value).
#[derive(Debug, Clone, Default)]
pub struct LockOptions {
    pub ttl: Option<f64>,
    pub retry_delay: Option<f64>,
    pub max_retries: Option<f64>,
    pub key_prefix: Option<String>,
    /// `waitReplicas.count` and `waitReplicas.timeoutMs`.
    pub wait_replicas: Option<(f64, f64)>,
    /// `timeout`: milliseconds of wall clock after which acquire gives up.
    pub timeout: Option<f64>,
    /// `fair`: FIFO order across processes.
    pub fair: Option<bool>,
    /// `driftFactor`: the clock-drift allowance, a fraction of the TTL.
    pub drift_factor: Option<f64>,
    /// `evictionPolicy`: `'warn'`, `'refuse'` or `'ignore'` (per manager).
    pub eviction_policy: Option<String>,
}

/// Validated lock options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    pub ttl_ms: u64,
    pub retry_delay_ms: u64,
    pub max_retries: Retries,
    pub key_prefix: String,
    pub wait_replicas: Option<WaitReplicas>,
    /// Give up (resolve `false`) after this much wall-clock time.
    pub timeout_ms: Option<u64>,
    /// Grant in FIFO order across processes (a queue in Redis).
    pub fair: bool,
    /// Clock-drift allowance in millionths of the TTL (`driftFactor`).
    pub drift_ppm: u64,
    /// What to do about servers that may evict lock keys.
    pub eviction_policy: EvictionPolicy,
}

impl Default for LockConfig {
    fn default() -> Self {
        LockConfig {
            ttl_ms: DEFAULT_TTL_MS,
            retry_delay_ms: DEFAULT_RETRY_DELAY_MS,
            max_retries: DEFAULT_MAX_RETRIES,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            wait_replicas: None,
            timeout_ms: None,
            fair: false,
            drift_ppm: DEFAULT_DRIFT_PPM,
            eviction_policy: DEFAULT_EVICTION_POLICY,
        }
    }
}

/// How long an acquire that started at `started` may wait.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub retry_delay: std::time::Duration,
    /// `timeout`: the wall-clock instant at which it gives up.
    pub deadline: Option<std::time::Instant>,
    /// `maxRetries × retryDelay` after the start: from then on, the first
    /// refusal ends it (unlimited retries: never).
    pub give_up_at: Option<std::time::Instant>,
}

impl LockConfig {
    /// The waiting limits of an acquire that started at `started`.
    pub fn patience(&self, started: std::time::Instant) -> Patience {
        let retry_delay = clock::duration_ms(self.retry_delay_ms);
        // A `timeout` or `maxRetries × retryDelay` beyond what the clock can
        // say (past clock::FOREVER) is no limit: wait practically forever.
        Patience {
            retry_delay,
            deadline: self
                .timeout_ms
                .and_then(|t| clock::checked_after(started, std::time::Duration::from_millis(t))),
            give_up_at: match self.max_retries {
                Retries::Limited(n) => clock::checked_after(
                    started,
                    clock::saturating_times(
                        std::time::Duration::from_millis(self.retry_delay_ms),
                        n,
                    ),
                ),
                Retries::Unlimited => None,
            },
        }
    }

    /// Validates user options, filling in defaults.
    pub fn from_options(opts: &LockOptions) -> Result<Self> {
        LockConfig::default().with(opts)
    }

    /// The configuration of one call: this one, or this one with the call's
    /// options (validated) in place of those it gives.
    pub fn for_call(&self, options: Option<&LockOptions>) -> Result<Self> {
        match options {
            Some(opts) => self.with(opts),
            None => Ok(self.clone()),
        }
    }

    /// Validates options given for one call, taking this configuration's
    /// values for those not given.
    pub fn with(&self, opts: &LockOptions) -> Result<Self> {
        let defaults = self.clone();
        let ttl_ms = match opts.ttl {
            Some(v) => millis("ttl", v, 1)?,
            None => defaults.ttl_ms,
        };
        let retry_delay_ms = match opts.retry_delay {
            Some(v) => millis("retryDelay", v, 0)?,
            None => defaults.retry_delay_ms,
        };
        let max_retries = match opts.max_retries {
            Some(v) => retries("maxRetries", v)?,
            None => defaults.max_retries,
        };
        let key_prefix = match &opts.key_prefix {
            Some(p) if p.len() >= MAX_KEY_BYTES => {
                return Err(Error::invalid(format!(
                    "option \"keyPrefix\" must be shorter than {MAX_KEY_BYTES} bytes"
                )))
            }
            Some(p) => p.clone(),
            None => defaults.key_prefix,
        };
        let wait_replicas = match opts.wait_replicas {
            Some((count, timeout)) => Some(WaitReplicas {
                count: count_of("waitReplicas.count", count, 1)?,
                timeout_ms: millis("waitReplicas.timeoutMs", timeout, 1)?,
            }),
            None => defaults.wait_replicas,
        };
        let timeout_ms = match opts.timeout {
            Some(v) => Some(millis("timeout", v, 0)?),
            None => defaults.timeout_ms,
        };
        let drift_ppm = match opts.drift_factor {
            Some(f) if f.is_finite() && (0.0..0.5).contains(&f) => (f * 1_000_000.0).round() as u64,
            Some(f) => {
                return Err(Error::invalid(format!(
                    "option \"driftFactor\" must be a number from 0 to less than 0.5 \
                     (a fraction of the ttl), got {f}"
                )))
            }
            None => defaults.drift_ppm,
        };
        let eviction_policy = match &opts.eviction_policy {
            Some(v) => EvictionPolicy::parse(v)?,
            None => defaults.eviction_policy,
        };
        Ok(LockConfig {
            eviction_policy,
            ttl_ms,
            retry_delay_ms,
            max_retries,
            key_prefix,
            wait_replicas,
            timeout_ms,
            fair: opts.fair.unwrap_or(defaults.fair),
            drift_ppm,
        })
    }

    /// The Redis key of a resource: the prefix followed by the name, as in 1.0.
    pub fn key_for(&self, resource_name: &str) -> Result<String> {
        if resource_name.is_empty() {
            return Err(Error::invalid(
                "argument \"resourceName\" must be a non-empty string",
            ));
        }
        let len = self.key_prefix.len() + resource_name.len();
        if len > MAX_KEY_BYTES {
            return Err(Error::invalid(format!(
                "argument \"resourceName\" is too long: the key would be {len} bytes, \
                 the limit is {MAX_KEY_BYTES} bytes (keyPrefix + resourceName, UTF-8)"
            )));
        }
        Ok(format!("{}{}", self.key_prefix, resource_name))
    }
}

/// The new TTL of `lock.extend(seconds)`, in milliseconds: fractions of a
/// second are kept to the millisecond; the result must be at least 1 ms.
pub fn extend_ttl_ms(seconds: f64) -> Result<u64> {
    let ms = (seconds * 1000.0).round();
    if !seconds.is_finite() || seconds < 0.001 || ms > MAX_MS as f64 {
        return Err(Error::invalid(format!(
            "argument \"seconds\" must be a finite number of seconds, at least 0.001 \
             and at most {}, got {seconds}",
            MAX_MS / 1000
        )));
    }
    Ok(ms as u64)
}

/// An integer number of milliseconds in `min..=MAX_MS`.
pub(crate) fn millis(name: &str, value: f64, min: u64) -> Result<u64> {
    if !value.is_finite() || value.fract() != 0.0 || value < min as f64 || value > MAX_MS as f64 {
        return Err(Error::invalid(format!(
            "option \"{name}\" must be an integer number of milliseconds from {min} to {MAX_MS}, \
             got {value}"
        )));
    }
    Ok(value as u64)
}

/// An integer count from `min` up.
fn count_of(name: &str, value: f64, min: u64) -> Result<u64> {
    if !value.is_finite() || value.fract() != 0.0 || value < min as f64 || value > MAX_MS as f64 {
        return Err(Error::invalid(format!(
            "option \"{name}\" must be an integer from {min} to {MAX_MS}, got {value}"
        )));
    }
    Ok(value as u64)
}

/// `-1` (unlimited) or a non-negative integer count.
fn retries(name: &str, value: f64) -> Result<Retries> {
    if value == -1.0 {
        return Ok(Retries::Unlimited);
    }
    if !value.is_finite() || value.fract() != 0.0 || value < 0.0 || value > MAX_MS as f64 {
        return Err(Error::invalid(format!(
            "option \"{name}\" must be -1 (unlimited) or an integer from 0 to {MAX_MS}, got {value}"
        )));
    }
    Ok(Retries::Limited(value as u64))
}

pub mod connection;

pub use connection::{ConnectionConfig, Mode, TlsConfig};

#[cfg(test)]
mod tests;
