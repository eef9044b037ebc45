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
//! The Lua lives in `src/protocol/lua/`, one file per script, each opening
//! with its KEYS / ARGV / return contract. The helpers the scripts share are
//! Lua `local function`s in `prelude.lua` (and, for the scripts that give a
//! fencing token, `grant.lua`), prepended to each script's text at compile
//! time; the text Redis runs is [`Script::source`].
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

/// Builds a script from its file in `src/protocol/lua/`, prepended with
/// `prelude.lua` and the other shared fragments named before it.
macro_rules! lua {
    ($($file:literal),+) => {
        concat!(
            include_str!("protocol/lua/prelude.lua"),
            $("\n", include_str!(concat!("protocol/lua/", $file, ".lua"))),+
        )
    };
}

/// Owner-checked release, announcing it to waiters; contract in
/// `protocol/lua/release.lua`.
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("release")));

/// Owner-checked extension of the lock's TTL; contract in
/// `protocol/lua/extend.lua`.
pub static EXTEND: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("extend")));

/// Whether the lock is ours; contract in `protocol/lua/is_held.lua`.
pub static IS_HELD: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("is_held")));

/// Fair (FIFO-queued) acquisition with a fencing token; contract in
/// `protocol/lua/fair_acquire.lua`.
pub static FAIR_ACQUIRE: LazyLock<Script> =
    LazyLock::new(|| Script::new(lua!("grant", "fair_acquire")));

/// Leaves the fair queue, telling the next waiter; contract in
/// `protocol/lua/leave_queue.lua`.
pub static LEAVE_QUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("leave_queue")));

/// Acquisition with a fencing token (`SET key id NX PX ttl`, then the next
/// token); contract in `protocol/lua/acquire.lua`.
pub static ACQUIRE: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("grant", "acquire")));

/// Acquisition without a fencing token (a Redlock master's part); contract
/// in `protocol/lua/acquire_plain.lua`.
pub static ACQUIRE_PLAIN: LazyLock<Script> = LazyLock::new(|| Script::new(lua!("acquire_plain")));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script, by the name of its file.
    fn all() -> [(&'static str, &'static Script); 7] {
        [
            ("acquire", &ACQUIRE),
            ("acquire_plain", &ACQUIRE_PLAIN),
            ("fair_acquire", &FAIR_ACQUIRE),
            ("release", &RELEASE),
            ("leave_queue", &LEAVE_QUEUE),
            ("extend", &EXTEND),
            ("is_held", &IS_HELD),
        ]
        .map(|(name, script)| (name, &**script))
    }

    /// The SHA1 of each script's text is pinned: any change of the Lua (the
    /// protocol) shows up here as a visible diff.
    #[test]
    fn script_sha1s_are_pinned() {
        let pinned = [
            ("acquire", "ffb6ed847747229b1bcc8d46f46e728f9ba1d24f"),
            ("acquire_plain", "bb2f72d512e9cac949249dfdc1ada0c947250209"),
            ("fair_acquire", "248c04b58ec0e5ffff056303b68fee2ec64be07e"),
            ("release", "80b990307b941d8cb3db76da5b26c72c4c6e94b7"),
            ("leave_queue", "356012ac59ce2f975adfc8e6cc58157890892549"),
            ("extend", "ce2cf07ef2c118353e60582732e5c4b80ccccd93"),
            ("is_held", "78ee625221ee3af36bb4fa3755ad0c488025394a"),
        ];
        for ((name, script), (pinned_name, sha1)) in all().into_iter().zip(pinned) {
            assert_eq!(name, pinned_name);
            assert_eq!(script.sha1, sha1, "the Lua of {name} changed");
        }
    }

    /// No script carries a `{{` or `}}` left over from Rust string
    /// formatting (in Lua they would be a nested table, not a brace).
    #[test]
    fn scripts_have_no_format_escapes() {
        for (name, script) in all() {
            let source = script.source();
            assert!(!source.contains("{{"), "{name} contains {{{{");
            assert!(!source.contains("}}"), "{name} contains }}}}");
        }
    }

    /// Each script is its own file after the shared fragments, and the text
    /// Redis runs starts with the prelude.
    #[test]
    fn scripts_are_prelude_then_their_file() {
        let prelude = include_str!("protocol/lua/prelude.lua");
        for (name, script) in all() {
            let source = script.source();
            assert!(source.starts_with(prelude), "{name} lacks the prelude");
            assert!(
                source.contains(&format!("-- {name}: ")),
                "{name} lacks its contract"
            );
        }
    }
}
