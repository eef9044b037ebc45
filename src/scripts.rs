//! The Lua scripts of the lock protocol, each built once.
//!
//! A script runs atomically in Redis: nothing else executes between its
//! `GET` and the command that follows, so "check the owner, then act" cannot
//! be split by another client's request. `redis::Script` sends `EVALSHA` and
//! falls back to loading the script when Redis answers `NOSCRIPT` (after a
//! restart or `SCRIPT FLUSH`).
//!
//! The on-Redis format is the one of dist-lock 1.0: the key is
//! `keyPrefix + resourceName` and its value the plain lock id (a UUID string),
//! written by `SET key id NX PX ttl`. Processes of 1.0 and of this version can
//! therefore share keys during a migration. The only addition is a counter
//! key per resource for fencing tokens (see [`crate::lock::fence_key`]),
//! which 1.0 ignores.

use redis::Script;
use std::sync::LazyLock;

/// Owner-checked release: deletes the key only if it still holds our id.
///
/// KEYS[1] lock key; ARGV[1] lock id.
/// Returns 1 if the lock was deleted, 0 if it had expired or belongs to
/// another owner (whose lock is left untouched).
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Owner-checked extension: resets the TTL only if the key still holds our id.
///
/// KEYS[1] lock key; ARGV[1] lock id; ARGV[2] new TTL in milliseconds.
/// Returns 1 if the TTL was reset, 0 if the lock is no longer ours (in which
/// case nothing is changed: an expired lock is not brought back).
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Acquisition with a fencing token: `SET key id NX PX ttl` (the 1.0 format)
/// and, only if that took the lock, `INCR` of the resource's counter, in one
/// atomic step, so tokens grow in the order locks are granted.
///
/// An attempt may be sent twice (see `LockManager::run`): if the key already
/// holds our id, the first one took the lock, and the script grants it again
/// with the token it got then (the counter has not moved since: it moves only
/// on grants of this key, and the key is ours).
///
/// KEYS[1] lock key; KEYS[2] fencing counter key (same cluster slot);
/// ARGV[1] lock id; ARGV[2] TTL in milliseconds.
/// Returns `{1, token}` if granted, `{0, pttl}` if the lock is held by
/// someone else (`pttl` its remaining milliseconds, -1 if it has no TTL).
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('INCR', KEYS[2])}
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or 0)}
end
return {0, redis.call('PTTL', KEYS[1])}
",
    )
});
