//! The eviction check: whether a server that holds locks may evict their
//! keys when its memory fills up.
//!
//! A `maxmemory-policy` other than `noeviction`, with `maxmemory` set, lets
//! Redis delete keys that are still in use: a held lock's key (and the
//! fencing counter) can vanish, and a second client is then granted the same
//! lock while the first still believes it holds it. `volatile-*` policies
//! pick keys with a TTL, which lock keys always have.
//!
//! The check reads `INFO memory` (`CONFIG` is often disabled on managed
//! services), once per connection: [`EvictionGate`] keeps a connection
//! *generation*, bumped whenever the manager opens a new connection (the
//! first one, or a Sentinel master's after a failover) or sees a connection
//! error, and the generation of the last completed check. redis-rs'
//! `ConnectionManager` (single server, Sentinel master), as used here with
//! RESP2, replaces its connection only after a command failed on it, and
//! the manager sees that failure, so every new connection is checked before
//! (`'refuse'`) or beside (`'warn'`) its first lock attempt. An attempt
//! compares the two generations (atomic loads): nothing more is done on a
//! connection that was already checked. A refusal is checked again after
//! a few seconds (`REFUSAL_RECHECK`), so a fixed server is accepted
//! without a reconnection.
//!
//! On a Cluster the `INFO` goes to every master. Limits: redis-rs reconnects
//! a Cluster node, and follows a failover or a slot move, without an error
//! reaching the manager when its own retry succeeds, so a new master found
//! that way is checked only at the manager's next connection error; and a
//! URL that asks for RESP3 lets `ConnectionManager` reconnect in the
//! background. A policy changed by `CONFIG SET` on a live connection is
//! seen at the next reconnection.

use crate::connection::Conn;
use crate::error::{Error, ErrorKind, Result};
use crate::options::EvictionPolicy;
use crate::sync::lock;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use redis::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What `INFO memory` said about one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// `noeviction`, or no `maxmemory` limit: lock keys are never evicted.
    Safe,
    /// Keys may be evicted under memory pressure.
    Unsafe { policy: String, maxmemory: u64 },
    /// The policy could not be read (`INFO` denied by an ACL); the server's
    /// reply, for the message.
    Unreadable { reason: String },
}

/// A server that may evict lock keys, or whose policy could not be read,
/// as reported to the user (`'warning'` event, code `EEVICTION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// `host:port` of the server.
    pub server: String,
    /// Its `maxmemory-policy`; `None` if it could not be read.
    pub policy: Option<String>,
    /// Its `maxmemory` in bytes; `None` if it could not be read.
    pub maxmemory: Option<u64>,
    /// What can happen and how to fix it.
    pub message: String,
}

/// Where a manager's warnings go (the binding forwards them to JS).
pub type WarningSink = Arc<dyn Fn(Warning) + Send + Sync>;

/// A refusal is checked again after this long, so that a server whose
/// configuration was fixed is accepted without a reconnection.
const REFUSAL_RECHECK: Duration = Duration::from_secs(5);

/// Reads the eviction settings from the text of `INFO memory`.
pub fn parse_info(text: &str) -> Finding {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let maxmemory = field("maxmemory").and_then(|v| v.parse::<u64>().ok());
    match (field("maxmemory_policy"), maxmemory) {
        (Some("noeviction"), _) | (_, Some(0)) => Finding::Safe,
        (Some(policy), Some(maxmemory)) => Finding::Unsafe {
            policy: policy.to_owned(),
            maxmemory,
        },
        _ => Finding::Unreadable {
            reason: "INFO memory did not report maxmemory and maxmemory_policy".into(),
        },
    }
}

/// The user-facing report of `finding` on `server` (`None` if safe).
pub fn warning(server: &str, finding: &Finding) -> Option<Warning> {
    match finding {
        Finding::Safe => None,
        Finding::Unsafe { policy, maxmemory } => Some(Warning {
            server: server.to_owned(),
            policy: Some(policy.clone()),
            maxmemory: Some(*maxmemory),
            message: format!(
                "{server}: Redis may evict lock keys: maxmemory-policy is \"{policy}\" with \
                 maxmemory {maxmemory} bytes, so when memory fills up a held lock's key (and its \
                 fencing counter) can be deleted and a second client granted the same lock (even \
                 the same fencing token). Fix: CONFIG SET maxmemory-policy noeviction (and in \
                 redis.conf), or keep locks on a server of their own with noeviction; option \
                 evictionPolicy: 'refuse' refuses to lock there, 'ignore' skips this check"
            ),
        }),
        Finding::Unreadable { reason } => Some(Warning {
            server: server.to_owned(),
            policy: None,
            maxmemory: None,
            message: format!(
                "{server}: could not check whether Redis may evict lock keys ({reason}). \
                 Grant the user the INFO command (ACL SETUSER <user> +info), or set option \
                 evictionPolicy to 'ignore' to skip this check"
            ),
        }),
    }
}

/// `INFO memory` of the server (or, on a Cluster, of every master) behind
/// `conn`, by server address (`default_server` for a single connection).
pub async fn read(conn: &mut Conn, default_server: &str) -> Result<Vec<(String, Finding)>> {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("memory");
    match conn {
        Conn::Single(c) => {
            let reply = cmd.query_async::<Value>(c).await;
            Ok(vec![(default_server.to_owned(), finding_of(reply)?)])
        }
        Conn::Cluster(c) => {
            let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
            let reply = c.route_command(cmd, routing).await?;
            let Value::Map(nodes) = reply else {
                return Ok(vec![(default_server.to_owned(), finding_of(Ok(reply))?)]);
            };
            nodes
                .into_iter()
                .map(|(addr, value)| {
                    let addr = redis::from_redis_value::<String>(addr)
                        .unwrap_or_else(|_| default_server.to_owned());
                    let reply = match value {
                        Value::ServerError(e) => Err(redis::RedisError::from(e)),
                        v => Ok(v),
                    };
                    Ok((addr, finding_of(reply)?))
                })
                .collect()
        }
    }
}

/// The finding of one server's reply. An error reply (`NOPERM` from an ACL
/// without `+info`, or an unknown command where `INFO` was renamed) is an
/// unreadable policy; a failure to get any reply is the check's failure.
fn finding_of(reply: redis::RedisResult<Value>) -> Result<Finding> {
    match reply {
        Ok(v) => {
            let text = redis::from_redis_value::<String>(v).map_err(|e| {
                Error::new(
                    ErrorKind::Redis,
                    format!("unexpected reply to INFO memory: {e}"),
                )
            })?;
            Ok(parse_info(&text))
        }
        Err(e)
            if matches!(
                e.kind(),
                redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
            ) =>
        {
            let code = e.code().unwrap_or("ERR");
            let detail = e.detail().unwrap_or("").trim();
            Ok(Finding::Unreadable {
                reason: format!("INFO was refused: {code} {detail}")
                    .trim_end()
                    .to_owned(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The verdict of the last check.
#[derive(Default)]
struct Checked {
    /// `Some` if locking there is refused (`'refuse'` mode).
    refusal: Option<Error>,
    at: Option<Instant>,
}

/// The eviction check of one manager's connection; see the module doc.
pub struct EvictionGate {
    policy: EvictionPolicy,
    /// Bumped at each new connection and after each connection error.
    generation: AtomicU64,
    /// The generation of the last check started beside an attempt
    /// (`'warn'`: one such check per generation).
    started_generation: AtomicU64,
    /// The generation of the last completed check (kept apart from
    /// `checked` so that the hot path is one atomic load).
    checked_generation: AtomicU64,
    checked: Mutex<Checked>,
    /// The last check refused (read without the mutex on the hot path).
    refusing: AtomicBool,
    /// One check at a time; callers that waited reuse its verdict.
    checking: tokio::sync::Mutex<()>,
    sink: Mutex<Option<WarningSink>>,
}

/// What an attempt to take a lock must do first.
pub enum Due {
    /// Nothing: checked already, or no check in this mode.
    Nothing,
    /// Check, and wait for the verdict (`'refuse'`).
    Wait,
    /// Start a check beside the attempt, not waiting for it (`'warn'`).
    Alongside,
}

impl EvictionGate {
    pub fn new(policy: EvictionPolicy) -> Self {
        EvictionGate {
            policy,
            generation: AtomicU64::new(1),
            started_generation: AtomicU64::new(0),
            checked_generation: AtomicU64::new(0),
            checked: Mutex::new(Checked::default()),
            refusing: AtomicBool::new(false),
            checking: tokio::sync::Mutex::new(()),
            sink: Mutex::new(None),
        }
    }

    /// Where warnings go from now on.
    pub fn set_sink(&self, sink: WarningSink) {
        *lock(&self.sink) = Some(sink);
    }

    /// A new connection, or the old one may have been replaced: check again.
    pub fn reconnected(&self) {
        if self.policy != EvictionPolicy::Ignore {
            self.generation.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What an attempt must do first (cheap: atomic loads, except while
    /// refusing).
    pub fn due(&self) -> Due {
        let current = self.generation.load(Ordering::Relaxed);
        let checked = self.checked_generation.load(Ordering::Acquire) == current;
        match self.policy {
            EvictionPolicy::Ignore => Due::Nothing,
            EvictionPolicy::Warn if checked => Due::Nothing,
            // The first attempt of a generation starts the check.
            EvictionPolicy::Warn
                if self.started_generation.swap(current, Ordering::AcqRel) != current =>
            {
                Due::Alongside
            }
            EvictionPolicy::Warn => Due::Nothing,
            EvictionPolicy::Refuse if checked && !self.refusing.load(Ordering::Acquire) => {
                Due::Nothing
            }
            EvictionPolicy::Refuse => Due::Wait,
        }
    }

    fn refusal_stale(&self) -> bool {
        let checked = lock(&self.checked);
        checked.refusal.is_some() && checked.at.is_none_or(|at| at.elapsed() >= REFUSAL_RECHECK)
    }

    /// The cached refusal, if locking is refused.
    pub fn refusal(&self) -> Option<Error> {
        lock(&self.checked).refusal.clone()
    }

    /// Runs `read` (the `INFO` of the current connection) unless a check of
    /// this generation already completed, records the verdict, reports each
    /// unsafe server once per check (`'warn'`), and returns the refusal
    /// (`'refuse'`). A failed `read` is returned and not recorded.
    pub async fn check<F, Fut>(&self, read: F) -> Result<()>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(String, Finding)>>>,
    {
        let _one = self.checking.lock().await;
        let generation = self.generation.load(Ordering::Relaxed);
        if self.checked_generation.load(Ordering::Acquire) == generation && !self.refusal_stale() {
            return self.refusal().map_or(Ok(()), Err);
        }
        let findings = read().await?;
        let warnings: Vec<Warning> = findings
            .iter()
            .filter_map(|(server, f)| warning(server, f))
            .collect();
        let refusal = match (self.policy, warnings.first()) {
            (EvictionPolicy::Refuse, Some(w)) => Some(Error::new(
                ErrorKind::Eviction,
                format!("lock not taken (evictionPolicy 'refuse'): {}", w.message),
            )),
            _ => None,
        };
        if self.policy == EvictionPolicy::Warn {
            let sink = lock(&self.sink).clone();
            if let Some(sink) = sink {
                for w in warnings {
                    sink(w);
                }
            }
        }
        self.refusing.store(refusal.is_some(), Ordering::Release);
        *lock(&self.checked) = Checked {
            refusal: refusal.clone(),
            at: Some(Instant::now()),
        };
        self.checked_generation.store(generation, Ordering::Release);
        refusal.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "# Memory\r\nused_memory:1000\r\nmaxmemory:2097152\r\n\
                        maxmemory_human:2.00M\r\nmaxmemory_policy:allkeys-lru\r\n";

    #[test]
    fn an_evicting_policy_with_a_limit_is_unsafe() {
        assert_eq!(
            parse_info(INFO),
            Finding::Unsafe {
                policy: "allkeys-lru".into(),
                maxmemory: 2_097_152
            }
        );
    }

    #[test]
    fn noeviction_or_no_limit_is_safe() {
        assert_eq!(
            parse_info(&INFO.replace("allkeys-lru", "noeviction")),
            Finding::Safe
        );
        assert_eq!(
            parse_info(&INFO.replace("maxmemory:2097152", "maxmemory:0")),
            Finding::Safe
        );
    }

    #[test]
    fn missing_fields_are_unreadable() {
        assert!(matches!(
            parse_info("# Memory\r\nused_memory:1\r\n"),
            Finding::Unreadable { .. }
        ));
    }

    #[test]
    fn warnings_name_the_server_and_the_fix() {
        let w = warning("127.0.0.1:6380", &parse_info(INFO));
        let w = w.expect("unsafe");
        assert_eq!(w.policy.as_deref(), Some("allkeys-lru"));
        assert!(w.message.starts_with("127.0.0.1:6380: "));
        assert!(w.message.contains("noeviction"));
        assert_eq!(warning("x", &Finding::Safe), None);
    }

    #[tokio::test]
    async fn a_check_runs_once_per_connection_generation() {
        let gate = EvictionGate::new(EvictionPolicy::Refuse);
        assert!(matches!(gate.due(), Due::Wait));
        let unsafe_ = || async { Ok(vec![("s:1".to_owned(), parse_info(INFO))]) };
        let err = gate.check(unsafe_).await.err().map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Eviction));
        // Cached: the next check does not read.
        let err = gate.check(|| async { Ok(vec![]) }).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::Eviction));
        gate.reconnected();
        assert!(matches!(gate.due(), Due::Wait));
        assert!(gate.check(|| async { Ok(vec![]) }).await.is_ok());
        assert!(matches!(gate.due(), Due::Nothing));
    }

    #[test]
    fn ignore_never_checks() {
        let gate = EvictionGate::new(EvictionPolicy::Ignore);
        gate.reconnected();
        assert!(matches!(gate.due(), Due::Nothing));
    }
}
