//! Fencing counters that do not grow with the number of resource names, the
//! migration from the per-resource counters of earlier versions, and lock
//! keys of another type (dist-lock 2.0.1's hashes), against a real
//! `redis-server`.

#![deny(clippy::too_many_lines)]

mod common;

use common::TestRedis;
use dist_lock::error::ErrorKind;
use dist_lock::fencing;
use dist_lock::lock::{self, Attempt, Fence, Publish};
use dist_lock::manager::LockManager;
use dist_lock::options::{ConnectionConfig, LockConfig, LockOptions};
use std::time::{Duration, Instant};

fn manager(redis: &TestRedis, opts: LockOptions) -> LockManager {
    let conn = ConnectionConfig::new(redis.url(), Some(1000.0), Some(2000.0)).expect("valid");
    LockManager::new(conn, LockConfig::from_options(&opts).expect("valid")).expect("valid url")
}

fn opts(retry_delay: f64, max_retries: f64) -> LockOptions {
    LockOptions {
        ttl: Some(10_000.0),
        retry_delay: Some(retry_delay),
        max_retries: Some(max_retries),
        ..LockOptions::default()
    }
}

async fn cmd<T: redis::FromRedisValue>(
    c: &mut redis::aio::MultiplexedConnection,
    args: &[&str],
) -> T {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await.expect("redis command")
}

/// Locks and releases `names` one after the other; returns their tokens.
async fn lock_and_release(m: &LockManager, names: impl Iterator<Item = String>) -> Vec<u64> {
    let mut tokens = Vec::new();
    for name in names {
        let held = m
            .acquire(&name, None, None)
            .await
            .expect("ok")
            .expect("granted");
        tokens.push(held.fencing_token.expect("a token"));
        assert_eq!(m.release(&held).await, Ok(true));
    }
    tokens
}

#[tokio::test]
async fn the_keys_left_do_not_grow_with_the_number_of_names() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    let m = manager(&redis, opts(10.0, 0.0));
    let few = lock_and_release(&m, (0..20).map(|i| format!("few-{i}"))).await;
    let after_few: i64 = cmd(&mut c, &["DBSIZE"]).await;
    let many = lock_and_release(&m, (0..2000).map(|i| format!("many-{i}"))).await;
    let after_many: i64 = cmd(&mut c, &["DBSIZE"]).await;
    assert_eq!(after_few, after_many, "keys grew with the number of names");
    // What stays is the prefix's counter, holding the last token.
    let keys: Vec<String> = cmd(&mut c, &["KEYS", "*"]).await;
    assert_eq!(keys, vec!["{lock:}:fencing".to_owned()]);
    let last: u64 = cmd(&mut c, &["GET", "{lock:}:fencing"]).await;
    assert_eq!(Some(&last), many.last());
    // Strictly increasing in grant order, across resources.
    let all: Vec<u64> = few.into_iter().chain(many).collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "{all:?}");
}

#[tokio::test]
async fn tokens_strictly_increase_per_resource_across_managers_and_modes() {
    let redis = TestRedis::start();
    let plain = manager(&redis, opts(5.0, -1.0));
    let fair = manager(
        &redis,
        LockOptions {
            fair: Some(true),
            ..opts(5.0, -1.0)
        },
    );
    let mut per_resource: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut in_order = Vec::new();
    for round in 0..30 {
        let m = if round % 2 == 0 { &plain } else { &fair };
        let r = round % 3;
        let token = lock_and_release(m, std::iter::once(format!("r{r}"))).await[0];
        per_resource[r].push(token);
        in_order.push(token);
    }
    for tokens in &per_resource {
        assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    }
    assert!(in_order.windows(2).all(|w| w[0] < w[1]), "{in_order:?}");
}

#[tokio::test]
async fn a_counter_of_an_earlier_version_is_honoured_once_and_removed() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    let m = manager(&redis, opts(5.0, 0.0));
    let fair = manager(
        &redis,
        LockOptions {
            fair: Some(true),
            ..opts(5.0, 0.0)
        },
    );
    let _: () = cmd(&mut c, &["SET", "{lock:old}:fence", "1000"]).await;
    let _: () = cmd(&mut c, &["SET", "lock:{tag}old:fence", "3000"]).await;
    let _: () = cmd(&mut c, &["SET", "{lock:old-fair}:fence", "2000"]).await;

    let old = lock_and_release(&m, std::iter::once("old".to_owned())).await[0];
    assert_eq!(old, 1001, "the first grant continues above the old counter");
    let exists: i64 = cmd(&mut c, &["EXISTS", "{lock:old}:fence"]).await;
    assert_eq!(exists, 0, "the old counter is removed");
    // The shared counter is not lowered by a smaller old counter, and a key
    // with a hash tag had its old counter in `K:fence`.
    let _: () = cmd(&mut c, &["SET", "{lock:small}:fence", "7"]).await;
    let small = lock_and_release(&m, std::iter::once("small".to_owned())).await[0];
    assert_eq!(small, 1002);
    let tagged = lock_and_release(&m, std::iter::once("{tag}old".to_owned())).await[0];
    assert_eq!(tagged, 3001);
    let fair_token = lock_and_release(&fair, std::iter::once("old-fair".to_owned())).await[0];
    assert_eq!(fair_token, 3002, "the shared counter is already above 2000");
    let left: i64 = cmd(
        &mut c,
        &[
            "EXISTS",
            "{lock:small}:fence",
            "lock:{tag}old:fence",
            "{lock:old-fair}:fence",
        ],
    )
    .await;
    assert_eq!(left, 0);
    let next = lock_and_release(&m, std::iter::once("old".to_owned())).await[0];
    assert_eq!(next, 3003);

    // In fair mode too, a fresh old counter above the shared one raises it.
    let _: () = cmd(&mut c, &["SET", "{lock:old-fair}:fence", "9000"]).await;
    let again = lock_and_release(&fair, std::iter::once("old-fair".to_owned())).await[0];
    assert_eq!(again, 9001);
}

#[tokio::test]
async fn a_repeated_attempt_gets_the_same_token_and_release_leaves_nothing() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    let fence = |key: &str| Fence::new("lock:", key, false);
    let (me, you) = (fence("lock:again"), fence("lock:other"));
    let first = lock::try_acquire(&mut c, "lock:again", "me", 10_000, &me)
        .await
        .expect("ok");
    // Another resource moves the shared counter in between.
    let other = lock::try_acquire(&mut c, "lock:other", "you", 10_000, &you)
        .await
        .expect("ok");
    let again = lock::try_acquire(&mut c, "lock:again", "me", 10_000, &me)
        .await
        .expect("ok");
    assert_eq!(first, Attempt::Granted { fencing_token: 1 });
    assert_eq!(other, Attempt::Granted { fencing_token: 2 });
    assert_eq!(again, first, "the repeated attempt got another token");
    let fair_again = lock::try_acquire_fair(
        &mut c,
        "lock:again",
        "me",
        10_000,
        3_000,
        Publish::Plain,
        &me,
    )
    .await
    .expect("ok");
    assert_eq!(fair_again, first);
    let refused = lock::try_acquire(&mut c, "lock:again", "you", 10_000, &fence("lock:again"))
        .await
        .expect("ok");
    assert!(matches!(refused, Attempt::Refused { pttl_ms } if pttl_ms > 0));
    // The token is kept beside the lock, with its ttl, and goes with it.
    let pttl: i64 = cmd(&mut c, &["PTTL", &me.token]).await;
    assert!(pttl > 9_000, "{pttl}");
    lock::extend(&mut c, "lock:again", "me", Some(&me.token), 60_000)
        .await
        .expect("extended");
    let pttl: i64 = cmd(&mut c, &["PTTL", &me.token]).await;
    assert!(pttl > 59_000, "{pttl}");
    for (key, id, f) in [("lock:again", "me", &me), ("lock:other", "you", &you)] {
        let released = lock::release(&mut c, key, id, Some(&f.token), Publish::Plain).await;
        assert_eq!(released, Ok(true));
    }
    let keys: Vec<String> = cmd(&mut c, &["KEYS", "*"]).await;
    assert_eq!(keys, vec!["{lock:}:fencing".to_owned()]);
}

#[tokio::test]
async fn a_lock_key_of_another_type_is_held_by_someone_else_and_never_modified() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    // dist-lock 2.0.1's format: a hash with the holder's id and owner.
    let _: () = cmd(&mut c, &["HSET", "lock:h", "id", "owner"]).await;
    let _: () = cmd(&mut c, &["PEXPIRE", "lock:h", "1500"]).await;
    let f = Fence::new("lock:", "lock:h", false);
    match lock::try_acquire(&mut c, "lock:h", "me", 10_000, &f).await {
        Ok(Attempt::Refused { pttl_ms }) => assert!(pttl_ms > 0 && pttl_ms <= 1500, "{pttl_ms}"),
        other => panic!("{other:?}"),
    }
    let fair = lock::try_acquire_fair(&mut c, "lock:h", "me", 10_000, 3_000, Publish::Plain, &f);
    assert!(matches!(fair.await, Ok(Attempt::Refused { pttl_ms }) if pttl_ms > 0));
    let plain = lock::try_acquire_plain(&mut c, "lock:h", "me", 10_000).await;
    assert!(matches!(plain, Ok(Attempt::Refused { pttl_ms }) if pttl_ms > 0));
    assert_eq!(lock::is_held(&mut c, "lock:h", "me").await, Ok(false));
    assert_eq!(lock::is_locked(&mut c, "lock:h").await, Ok(true));
    let released = lock::release(&mut c, "lock:h", "me", Some(&f.token), Publish::Plain).await;
    assert_eq!(released, Ok(false));
    let extended = lock::extend(&mut c, "lock:h", "me", Some(&f.token), 60_000).await;
    assert_eq!(extended.expect_err("not ours").kind(), ErrorKind::LockLost);

    let m = manager(&redis, opts(50.0, 2.0));
    assert!(m
        .acquire("h", None, None)
        .await
        .expect("no error")
        .is_none());
    assert_eq!(m.is_locked("h").await, Ok(true));
    let hash: Vec<String> = cmd(&mut c, &["HGETALL", "lock:h"]).await;
    assert_eq!(hash, vec!["id".to_owned(), "owner".to_owned()]);
    let pttl: i64 = cmd(&mut c, &["PTTL", "lock:h"]).await;
    assert!(pttl > 0 && pttl <= 1500, "the hash's ttl changed: {pttl}");

    // Unlimited retries: granted once the hash expired.
    let started = Instant::now();
    let waiter = manager(&redis, opts(100.0, -1.0));
    let held = tokio::time::timeout(Duration::from_secs(20), waiter.acquire("h", None, None))
        .await
        .expect("granted within 20 s")
        .expect("ok")
        .expect("granted");
    assert!(started.elapsed() >= Duration::from_millis(200));
    let value: String = cmd(&mut c, &["GET", "lock:h"]).await;
    assert_eq!(value, held.id);
    assert_eq!(waiter.release(&held).await, Ok(true));

    // Without a ttl: refused with -1.
    let _: () = cmd(&mut c, &["SADD", "lock:set", "x"]).await;
    let f = Fence::new("lock:", "lock:set", false);
    let refused = lock::try_acquire(&mut c, "lock:set", "me", 10_000, &f).await;
    assert_eq!(refused, Ok(Attempt::Refused { pttl_ms: -1 }));
}

#[tokio::test]
async fn with_an_empty_prefix_the_counter_names_are_refused() {
    let redis = TestRedis::start();
    let m = manager(
        &redis,
        LockOptions {
            key_prefix: Some(String::new()),
            ..opts(5.0, 0.0)
        },
    );
    for name in ["{}:fencing", "{~0a1b2}:fencing", "{}:token:x"] {
        let err = m.acquire(name, None, None).await.expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{}", err.message());
        assert!(err.message().contains("resourceName"), "{}", err.message());
    }
    let tokens = lock_and_release(
        &m,
        ["a", "{}:fence", "{x}:fencing"]
            .map(String::from)
            .into_iter(),
    )
    .await;
    assert_eq!(tokens, vec![1, 2, 3]);
}

#[tokio::test]
async fn the_slot_function_agrees_with_cluster_keyslot() {
    let dir = std::env::temp_dir().join(format!("dist-lock-keyslot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir_arg = dir.to_string_lossy().into_owned();
    let redis = TestRedis::start_args(&["--cluster-enabled", "yes", "--dir", &dir_arg]);
    let mut c = redis.conn().await;
    let mut keys: Vec<String> = [
        "foo",
        "123456789",
        "",
        "{",
        "}",
        "{}",
        "a{}b{c}",
        "x{y}z",
        "{{a}}",
    ]
    .map(String::from)
    .to_vec();
    keys.extend((0..300).map(|i| format!("lock:resource-{i}")));
    keys.extend((0..50).map(|i| format!("lock:{{tenant-{i}}}:x")));
    keys.extend((0..50).map(|i| fencing::counter_key("lock:", &format!("lock:n{i}"), true)));
    keys.push("ünïcödé".to_owned());
    for key in &keys {
        let slot: u16 = cmd(&mut c, &["CLUSTER", "KEYSLOT", key]).await;
        assert_eq!(fencing::key_slot(key), slot, "{key:?}");
    }
    // Each counter is in the slot of the lock key it serves.
    for i in 0..50 {
        let key = format!("lock:n{i}");
        let counter = fencing::counter_key("lock:", &key, true);
        let a: u16 = cmd(&mut c, &["CLUSTER", "KEYSLOT", &counter]).await;
        let b: u16 = cmd(&mut c, &["CLUSTER", "KEYSLOT", &key]).await;
        assert_eq!(a, b, "{counter} {key}");
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_counter_that_holds_no_count_fails_the_grant_and_leaves_no_lock() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    let m = manager(&redis, opts(5.0, 0.0));
    for bad in ["not a number", "9223372036854775807"] {
        let _: () = cmd(&mut c, &["SET", "{lock:}:fencing", bad]).await;
        let err = m.acquire("r", None, None).await.expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::Redis, "{}", err.message());
        let left: i64 = cmd(&mut c, &["EXISTS", "lock:r", "{lock:}:token:lock:r"]).await;
        assert_eq!(left, 0, "a lock without a token was left ({bad})");
    }
    // An old counter that holds no count is not ours: left alone, and the
    // grant goes on.
    let _: () = cmd(&mut c, &["SET", "{lock:}:fencing", "5"]).await;
    let _: () = cmd(&mut c, &["HSET", "{lock:r}:fence", "a", "b"]).await;
    let tokens = lock_and_release(&m, std::iter::once("r".to_owned())).await;
    assert_eq!(tokens, vec![6]);
    let kind: String = cmd(&mut c, &["TYPE", "{lock:r}:fence"]).await;
    assert_eq!(kind, "hash");
}
