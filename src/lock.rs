//! A held lock, its validity, and the owner-checked operations on it.

use crate::error::{Error, ErrorKind, Result};
use crate::fencing;
use crate::scripts;

pub use crate::held::{Grant, HeldLock};
use redis::aio::ConnectionLike;

/// The outcome of one acquisition attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The lock was taken; the resource's next fencing token.
    Granted { fencing_token: u64 },
    /// Someone else holds it, for `pttl_ms` more milliseconds (-1: no TTL).
    Refused { pttl_ms: i64 },
}

/// How release messages are published: plain pub/sub on one server, sharded
/// pub/sub (`SPUBLISH`, to the node that serves the channel's slot) on a
/// Redis Cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Publish {
    #[default]
    Plain,
    Sharded,
}

impl Publish {
    /// The command the scripts call.
    pub fn command(self) -> &'static str {
        match self {
            Publish::Plain => "PUBLISH",
            Publish::Sharded => "SPUBLISH",
        }
    }
}

/// The keys of one grant's fencing token (see [`crate::fencing`]): the
/// counter it increments, the key that keeps its token while the lock is
/// held, and the resource's counter of an earlier version to honour (left
/// out on a Redis Cluster when it is not in the lock key's slot: the earlier
/// version could not use it there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub counter: String,
    pub token: String,
    pub legacy: Option<String>,
}

impl Fence {
    /// The fencing keys of a grant of `key`, a lock key under `prefix`.
    pub fn new(prefix: &str, key: &str, cluster: bool) -> Self {
        let legacy = fencing::legacy_counter_key(key);
        let legacy_usable = !cluster || fencing::key_slot(&legacy) == fencing::key_slot(key);
        Fence {
            counter: fencing::counter_key(prefix, key, cluster),
            token: fencing::token_key(prefix, key, cluster),
            legacy: legacy_usable.then_some(legacy),
        }
    }
}

/// The fair-mode queue of a key: waiter ids scored by enqueue time (µs).
pub fn queue_key(key: &str) -> String {
    tagged(key, "queue")
}

/// The deadlines of the fair-mode queue's entries (ms, Redis clock).
pub fn queue_deadlines_key(key: &str) -> String {
    tagged(key, "queue:deadlines")
}

/// The pub/sub channel on which releases of `key` are announced.
pub fn channel(key: &str) -> String {
    tagged(key, "released")
}

/// A name derived from `key` that hashes to the same cluster slot: a key with
/// a hash tag keeps it (`lock:{a}b` → `lock:{a}b:queue`), any other becomes
/// the tag (`lock:a` → `{lock:a}:queue`). A key with a `}` but no valid tag
/// cannot be embedded as a tag; its names are `key:suffix`, in the same slot
/// only on a single Redis (not on Cluster).
fn tagged(key: &str, suffix: &str) -> String {
    if has_hash_tag(key) || key.contains('}') {
        format!("{key}:{suffix}")
    } else {
        format!("{{{key}}}:{suffix}")
    }
}

fn has_hash_tag(key: &str) -> bool {
    match key.find('{') {
        Some(open) => match key[open + 1..].find('}') {
            Some(len) => len > 0,
            None => false,
        },
        None => false,
    }
}

/// One attempt: the acquire script (`SET key id NX PX ttl`, then the next
/// fencing token from `fence.counter` if granted, atomically).
pub async fn try_acquire<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    ttl_ms: u64,
    fence: &Fence,
) -> Result<Attempt> {
    let keys = (key, fence.counter.as_str(), fence.token.as_str());
    let legacy = fence.legacy.as_deref().unwrap_or("");
    let reply = scripts::ACQUIRE
        .run(conn, 3, keys, (id, ttl_ms, legacy))
        .await?;
    attempt_from(key, reply)
}

/// One attempt without a fencing token (a Redlock master's part, where a
/// per-master counter would mean nothing): `SET key id NX PX ttl` only.
pub async fn try_acquire_plain<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    ttl_ms: u64,
) -> Result<Attempt> {
    let reply = scripts::ACQUIRE_PLAIN
        .run(conn, 1, key, (id, ttl_ms))
        .await?;
    attempt_from(key, reply)
}

/// One fair attempt: the waiter (`id`) joins or stays in the key's queue in
/// Redis, and is granted the lock only when it is first in line; its queue
/// entry lives `entry_ms` unless refreshed by the next attempt.
pub async fn try_acquire_fair<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    ttl_ms: u64,
    entry_ms: u64,
    publish: Publish,
    fence: &Fence,
) -> Result<Attempt> {
    let (queue, deadlines, channel) = (queue_key(key), queue_deadlines_key(key), channel(key));
    let keys = (
        key,
        fence.counter.as_str(),
        queue.as_str(),
        deadlines.as_str(),
        fence.token.as_str(),
    );
    let legacy = fence.legacy.as_deref().unwrap_or("");
    let args = (
        id,
        ttl_ms,
        entry_ms,
        channel.as_str(),
        publish.command(),
        legacy,
    );
    let reply = scripts::FAIR_ACQUIRE.run(conn, 5, keys, args).await?;
    attempt_from(key, reply)
}

/// Leaves the key's fair queue (nothing happens if `id` is not in it).
pub async fn leave_queue<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    publish: Publish,
) -> Result<()> {
    let (queue, deadlines, channel) = (queue_key(key), queue_deadlines_key(key), channel(key));
    let keys = (key, queue.as_str(), deadlines.as_str());
    let _: i64 = scripts::LEAVE_QUEUE
        .run(conn, 3, keys, (id, channel.as_str(), publish.command()))
        .await?;
    Ok(())
}

fn attempt_from(key: &str, (granted, value): (i64, i64)) -> Result<Attempt> {
    if granted == 1 {
        let fencing_token = u64::try_from(value).map_err(|_| {
            Error::new(
                ErrorKind::Redis,
                format!("the fencing counter of \"{key}\" holds an invalid value: {value}"),
            )
        })?;
        Ok(Attempt::Granted { fencing_token })
    } else {
        Ok(Attempt::Refused { pttl_ms: value })
    }
}

/// Deletes the lock if `id` still owns it (and `token_key`, the key that
/// keeps its fencing token, if given), and announces the release.
///
/// Returns `true` if it was released, `false` if it had already expired or
/// been taken by someone else (or the key holds another type); another
/// owner's lock is never deleted.
pub async fn release<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    token_key: Option<&str>,
    publish: Publish,
) -> Result<bool> {
    let (queue, deadlines, channel) = (queue_key(key), queue_deadlines_key(key), channel(key));
    let mut keys = vec![key, queue.as_str(), deadlines.as_str()];
    keys.extend(token_key);
    let deleted: i64 = scripts::RELEASE
        .run(
            conn,
            keys.len(),
            keys.as_slice(),
            (id, channel.as_str(), publish.command()),
        )
        .await?;
    Ok(deleted == 1)
}

/// Resets the lock's TTL to `ttl_ms` if `id` still owns it (and that of
/// `token_key`, the key that keeps its fencing token, if given).
///
/// Fails with [`ErrorKind::LockLost`] when the lock is no longer held: a
/// caller that goes on working must know it lost its exclusion.
pub async fn extend<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    token_key: Option<&str>,
    ttl_ms: u64,
) -> Result<()> {
    let mut keys = vec![key];
    keys.extend(token_key);
    let extended: i64 = scripts::EXTEND
        .run(conn, keys.len(), keys.as_slice(), (id, ttl_ms))
        .await?;
    if extended == 1 {
        Ok(())
    } else {
        Err(lost(
            key,
            "it is no longer held (expired or taken by another owner)",
        ))
    }
}

/// Whether `key` still holds `id` (a script: a key of another type is not
/// ours, and no error).
pub async fn is_held<C: ConnectionLike>(conn: &mut C, key: &str, id: &str) -> Result<bool> {
    let held: i64 = scripts::IS_HELD.run(conn, 1, key, id).await?;
    Ok(held == 1)
}

/// Whether anyone holds `key` (a plain `EXISTS`: a key of any type counts).
pub async fn is_locked<C: ConnectionLike>(conn: &mut C, key: &str) -> Result<bool> {
    let count: i64 = redis::cmd("EXISTS").arg(key).query_async(conn).await?;
    Ok(count > 0)
}

/// A lock-lost error for `key`.
pub fn lost(key: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::LockLost,
        format!("lock \"{key}\" is lost: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{validity_ms, DEFAULT_DRIFT_PPM};
    use std::time::{Duration, Instant};

    fn grant(sent_at: Instant, ttl_ms: u64) -> Grant {
        Grant {
            sent_at,
            ttl_ms,
            drift_ppm: DEFAULT_DRIFT_PPM,
        }
    }

    #[test]
    fn derived_names_share_the_lock_keys_hash_tag() {
        assert_eq!(queue_key("lock:a"), "{lock:a}:queue");
        assert_eq!(queue_key("lock:{user1}:x"), "lock:{user1}:x:queue");
        assert_eq!(queue_key("lock:{}x"), "lock:{}x:queue");
        assert_eq!(queue_key("a}b"), "a}b:queue");
        assert_eq!(channel("lock:{open"), "{lock:{open}:released");
    }

    #[test]
    fn the_legacy_counter_is_used_on_cluster_only_in_the_keys_slot() {
        let f = Fence::new("lock:", "lock:a", true);
        assert_eq!(f.legacy.as_deref(), Some("{lock:a}:fence"));
        assert_eq!(fencing::key_slot(&f.counter), fencing::key_slot("lock:a"));
        assert_eq!(fencing::key_slot(&f.token), fencing::key_slot("lock:a"));
        assert_eq!(Fence::new("lock:", "lock:{}x", true).legacy, None);
        let single = Fence::new("lock:", "lock:{}x", false);
        assert_eq!(single.legacy.as_deref(), Some("lock:{}x:fence"));
        assert_eq!(single.counter, "{lock:}:fencing");
        assert_eq!(single.token, "{lock:}:token:lock:{}x");
    }

    #[test]
    fn validity_starts_at_the_send_and_shrinks_by_the_drift() {
        let sent = Instant::now();
        let held = HeldLock::new("id".into(), "k".into(), Some(1), 1, 0, grant(sent, 10_000));
        let expected = sent + Duration::from_millis(validity_ms(10_000));
        assert_eq!(held.valid_until(), expected);
        assert!(held.remaining_validity_ms() <= 10_000.0 - 100.0);
        held.renewed(sent, 1_000);
        assert_eq!(held.ttl_ms(), 1_000);
        assert!(held.remaining_validity_ms() < 1_000.0);
    }

    #[test]
    fn release_marks_once_and_can_be_undone() {
        let held = HeldLock::new(
            "id".into(),
            "k".into(),
            Some(1),
            1,
            0,
            grant(Instant::now(), 1_000),
        );
        let stop = held.stop_signal();
        assert!(held.mark_released());
        assert!(!held.mark_released());
        assert!(*stop.borrow());
        held.unmark_released();
        assert!(!held.is_released());
    }
}
