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
//! therefore share keys during a migration.

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
