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
//! therefore share keys during a migration. The additions, which 1.0
//! ignores, are the fencing counters (one per `keyPrefix`, or per hash slot
//! on a Redis Cluster) and, while a lock is held, the key that keeps its
//! token (see [`crate::fencing`]).
//!
//! A lock key that holds another type than a string (for example a hash
//! lock of dist-lock 2.0.1, `HMSET key id owner` + `PEXPIRE`) is held by
//! someone else: attempts are refused with its PTTL, release and extension
//! find it is not ours, and no script modifies it.

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, RedisResult, ToRedisArgs};
use std::sync::LazyLock;

/// A Lua script, sent by its SHA1 (`EVALSHA`). When Redis does not know it
/// (`NOSCRIPT`: after a restart or `SCRIPT FLUSH`), it is sent whole with
/// `EVAL`, which also caches it again. (Loading it and retrying `EVALSHA`
/// would fail again if another flush came in between.)
pub struct Script {
    source: String,
    sha1: String,
}

impl Script {
    fn new(source: &str) -> Self {
        Script {
            source: source.to_owned(),
            sha1: redis::Script::new(source).get_hash().to_owned(),
        }
    }

    /// The Lua source (the benchmark runs it over another client, to tell the
    /// cost of the scripts' Redis work from the cost of the native core).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Runs the script with `keys` (`key_count` of them) and `args`.
    pub async fn run<T, K, A, C>(
        &self,
        conn: &mut C,
        key_count: usize,
        keys: K,
        args: A,
    ) -> RedisResult<T>
    where
        T: FromRedisValue,
        K: ToRedisArgs + Copy,
        A: ToRedisArgs + Copy,
        C: ConnectionLike,
    {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(&self.sha1).arg(key_count).arg(keys).arg(args);
        match evalsha.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                let mut eval = redis::cmd("EVAL");
                eval.arg(&self.source).arg(key_count).arg(keys).arg(args);
                eval.query_async(conn).await
            }
            other => other,
        }
    }
}

/// Lua that drops the fair-queue entries at the head whose deadline passed
/// (waiters that crashed or stopped asking) and leaves the live head in the
/// caller's local `head` (nil if the queue is empty). Needs `now` (ms, Redis
/// clock) and the queue in KEYS[q], its deadlines in KEYS[q + 1].
macro_rules! prune_queue {
    ($q:literal) => {
        concat!(
            "while true do\n",
            "  head = redis.call('ZRANGE', KEYS[",
            $q,
            "], 0, 0)[1]\n",
            "  if not head then break end\n",
            "  local deadline = tonumber(redis.call('ZSCORE', KEYS[",
            $q,
            " + 1], head))\n",
            "  if deadline and deadline >= now then break end\n",
            "  redis.call('ZREM', KEYS[",
            $q,
            "], head)\n",
            "  redis.call('ZREM', KEYS[",
            $q,
            " + 1], head)\n",
            "end\n",
        )
    };
}

/// The first line of every script that reads the clock: before Redis 5, a
/// script that writes after reading the clock must switch to effects
/// replication before its first write; from Redis 5 on this is the default
/// (and the call a no-op).
const PREAMBLE: &str = "if redis.replicate_commands then redis.replicate_commands() end";

/// Lua that sets `now` to the Redis server's clock in milliseconds and
/// `now_us` in microseconds.
const NOW: &str = "
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = math.floor(now_us / 1000)
";

/// Lua: `lock_value(key)` is the lock key's value if it is a string,
/// `false` if there is no such key, and `true` if it holds another type
/// (held by someone else: never ours, never modified). The type is told by
/// the error code of the `GET` (`WRONGTYPE`, the first word of Redis's error
/// reply), which needs no `TYPE` command in the ACL. Any other error (such
/// as `NOPERM`) is raised as Redis raises it, by the same `GET` again.
const LOCK_VALUE: &str = "
local function lock_value(key)
  local value = redis.pcall('GET', key)
  if type(value) == 'table' and value.err then
    if string.sub(value.err, 1, 9) == 'WRONGTYPE' then return true end
    return redis.call('GET', key)
  end
  return value
end
";

/// Lua: `grant(lock, counter, token_key, legacy, ttl, ours)` completes the
/// grant of `lock` (just set by the caller's `SET NX PX`, or already ours if
/// `ours`) and returns `{1, token}`, or an error reply.
///
/// - A lock that is already ours (an attempt sent again after its answer was
///   lost) keeps the token of its grant, read back from `token_key`, and both
///   keys get the new ttl.
/// - Otherwise the token is the next value of `counter` (shared by all the
///   resources of a prefix, or of a hash slot). If `legacy` (the resource's
///   counter of an earlier version, `{K}:fence`; `nil` for none) holds a
///   count, `counter` is first raised to it and `legacy` deleted, so that the
///   token is above every token given for the resource before. The token is
///   kept in `token_key` with the lock's ttl.
///
/// `legacy` comes in ARGV, not KEYS, because it rarely exists: during a
/// Cluster slot migration, a script whose declared keys are not all on the
/// node fails with `TRYAGAIN`, and `legacy` is only read on a grant. Scripts
/// do not roll back: if no token can be given (a counter that holds no
/// count, an `INCR` that would overflow), the lock is deleted again and the
/// error returned, so no lock is left without a token.
const GRANT: &str = "
local function greater(a, b)
  a = string.gsub(a, '^0+', '')
  b = string.gsub(b, '^0+', '')
  if #a ~= #b then return #a > #b end
  return a > b
end
local function next_token(counter, legacy)
  local current = redis.pcall('GET', counter)
  if type(current) == 'table' then return current end
  if current and not string.match(current, '^%d+$') then
    return redis.error_reply('the fencing counter ' .. counter .. ' does not hold a count')
  end
  local old = legacy and redis.pcall('GET', legacy)
  if type(old) == 'table' and string.sub(old.err, 1, 9) ~= 'WRONGTYPE' then return old end
  if type(old) == 'string' and string.match(old, '^%d+$') then
    if not current or greater(old, current) then
      redis.call('SET', counter, old)
    end
    redis.call('DEL', legacy)
  end
  return redis.pcall('INCR', counter)
end
local function grant(lock, counter, token_key, legacy, ttl, ours)
  if ours then
    redis.call('PEXPIRE', lock, ttl)
    local kept = redis.call('GET', token_key)
    if kept then
      redis.call('PEXPIRE', token_key, ttl)
      return {1, tonumber(kept)}
    end
  end
  local token = next_token(counter, legacy)
  if type(token) == 'table' then
    redis.call('DEL', lock)
    return token
  end
  redis.call('SET', token_key, token, 'PX', ttl)
  return {1, token}
end
";

/// Owner-checked release: deletes the key (and the key that keeps its
/// token) only if it still holds our id, and announces the release on the
/// key's channel so that waiters try at once.
///
/// KEYS[1] lock key; KEYS[2] fair queue; KEYS[3] its deadlines; KEYS[4]
/// (optional) the key that keeps the lock's fencing token.
/// ARGV[1] lock id; ARGV[2] release channel; ARGV[3] `PUBLISH`, or
/// `SPUBLISH` on a Redis Cluster (sharded pub/sub).
/// Publishes the id of the fair queue's live head (only that waiter may take
/// the lock), or `*` (everybody may try). Returns 1 if the lock was deleted,
/// 0 if it had expired or belongs to another owner (left untouched, and
/// nothing is published).
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PREAMBLE}
{LOCK_VALUE}
if lock_value(KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[1])
if KEYS[4] then
  redis.call('DEL', KEYS[4])
end
local head
-- Only fair waiters have a queue: without one, skip the clock and pruning.
if redis.call('EXISTS', KEYS[2]) == 1 then
{NOW}
{}
end
-- pcall: a user without pub/sub rights (Redis 7 ACLs) still releases;
-- waiters then find out by polling.
redis.pcall(ARGV[3], ARGV[2], head or '*')
return 1
",
        prune_queue!(2)
    ))
});

/// Owner-checked extension: resets the TTL (of the lock and of the key that
/// keeps its token) only if the key still holds our id.
///
/// KEYS[1] lock key; KEYS[2] (optional) the key that keeps its token;
/// ARGV[1] lock id; ARGV[2] new TTL in milliseconds.
/// Returns 1 if the TTL was reset, 0 if the lock is no longer ours (in which
/// case nothing is changed: an expired lock is not brought back).
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LOCK_VALUE}
if lock_value(KEYS[1]) == ARGV[1] then
  if KEYS[2] then
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"
    ))
});

/// Whether the lock is ours. KEYS[1] lock key; ARGV[1] lock id. Returns 1
/// or 0 (0 also for a key of another type).
pub static IS_HELD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LOCK_VALUE}
if lock_value(KEYS[1]) == ARGV[1] then return 1 end
return 0
"
    ))
});

/// Fair acquisition: like [`ACQUIRE`], but only the head of a FIFO queue in
/// Redis may take the lock, so waiters of all processes are served in the
/// order they arrived.
///
/// Each call enqueues the waiter (once: its first arrival keeps its place)
/// and pushes its entry's deadline to now + ARGV[3]; a waiter that stops
/// calling (crashed, gave up) is dropped once its deadline passed, so it
/// never blocks the queue for long. The queue's keys expire when nobody
/// refreshes them. When pruning made another waiter the head while the lock
/// is free, that waiter is told on the channel at once.
///
/// KEYS[1] lock key; KEYS[2] fencing counter; KEYS[3] queue; KEYS[4] its
/// deadlines; KEYS[5] the key that keeps the grant's token. ARGV[1] lock id
/// (also the waiter's queue id); ARGV[2] TTL ms; ARGV[3] queue entry
/// lifetime ms; ARGV[4] release channel; ARGV[5] `PUBLISH` or `SPUBLISH`;
/// ARGV[6] the resource's counter of an earlier version, or `''` (same slot).
/// Returns `{1, token}` if granted, `{0, pttl}` if not (pttl 0: the lock is
/// free but another waiter is first in line).
pub static FAIR_ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PREAMBLE}
{LOCK_VALUE}
{GRANT}
local legacy = ARGV[6] ~= '' and ARGV[6] or nil
-- Nobody queued: a free lock is granted at once.
if redis.call('EXISTS', KEYS[3]) == 0 and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], false)
end
-- Already ours (an earlier call of this waiter was granted but its answer
-- was lost): keep it, with the token it was granted.
if lock_value(KEYS[1]) == ARGV[1] then
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], true)
end
{NOW}
if not redis.call('ZSCORE', KEYS[3], ARGV[1]) then
  redis.call('ZADD', KEYS[3], now_us, ARGV[1])
end
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[3]), ARGV[1])
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local head
{}
if head == ARGV[1] and redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  return grant(KEYS[1], KEYS[2], KEYS[5], legacy, ARGV[2], false)
end
local keep = tonumber(ARGV[3]) * 2
redis.call('PEXPIRE', KEYS[3], keep)
redis.call('PEXPIRE', KEYS[4], keep)
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then
  pttl = 0
  if head ~= first then
    redis.pcall(ARGV[5], ARGV[4], head)
  end
end
return {{0, pttl}}
",
        prune_queue!(3)
    ))
});

/// Leaves the fair queue (a waiter that gave up, timed out or was aborted).
/// If it was the head and the lock is free, the next waiter is told.
///
/// KEYS[1] lock key; KEYS[2] queue; KEYS[3] its deadlines.
/// ARGV[1] waiter id; ARGV[2] release channel; ARGV[3] `PUBLISH` or
/// `SPUBLISH`. Returns 1 if it was queued.
pub static LEAVE_QUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{PREAMBLE}
{NOW}
local was_head = redis.call('ZRANGE', KEYS[2], 0, 0)[1] == ARGV[1]
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
if was_head and redis.call('EXISTS', KEYS[1]) == 0 then
  local head
{}
  if head then
    redis.pcall(ARGV[3], ARGV[2], head)
  end
end
return removed
",
        prune_queue!(2)
    ))
});

/// Acquisition with a fencing token: `SET key id NX PX ttl` (the 1.0 format;
/// one `SET` per attempt, as 1.0) and, only if that took the lock, the next
/// token from the counter (see `grant` above), in one atomic step, so tokens
/// grow in the order locks are granted.
///
/// An attempt may be sent twice (see `LockManager::run`): if the key already
/// holds our id, the first one took the lock, and the script grants it again
/// with the token it got then.
///
/// KEYS[1] lock key; KEYS[2] fencing counter; KEYS[3] the key that keeps the
/// grant's token (all in the lock key's cluster slot).
/// ARGV[1] lock id; ARGV[2] TTL in milliseconds; ARGV[3] the resource's
/// counter of an earlier version, or `''` (same slot).
/// Returns `{1, token}` if granted, `{0, pttl}` if the lock is held by
/// someone else (`pttl` its remaining milliseconds, -1 if it has no TTL).
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LOCK_VALUE}
{GRANT}
local legacy = ARGV[3] ~= '' and ARGV[3] or nil
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return grant(KEYS[1], KEYS[2], KEYS[3], legacy, ARGV[2], false)
end
if lock_value(KEYS[1]) == ARGV[1] then
  return grant(KEYS[1], KEYS[2], KEYS[3], legacy, ARGV[2], true)
end
return {{0, redis.call('PTTL', KEYS[1])}}
"
    ))
});

/// Acquisition without a fencing token (a Redlock master's part): the 1.0
/// `SET key id NX PX ttl`, granted again to the same id (a repeated send).
///
/// KEYS[1] lock key; ARGV[1] lock id; ARGV[2] TTL in milliseconds.
/// Returns `{1, 0}` if granted, `{0, pttl}` if held by someone else (a key
/// of another type too).
pub static ACQUIRE_PLAIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{LOCK_VALUE}
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {{1, 0}}
end
if lock_value(KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {{1, 0}}
end
return {{0, redis.call('PTTL', KEYS[1])}}
"
    ))
});
