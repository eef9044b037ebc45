//! Cleanups behind acquire attempts that timed out, against a real
//! `redis-server` stalled by `CLIENT PAUSE`.

#![deny(clippy::too_many_lines)]

mod common;

use common::TestRedis;
use dist_lock::error::ErrorKind;
use dist_lock::manager::LockManager;
use dist_lock::options::{ConnectionConfig, LockConfig, LockOptions};
use std::time::{Duration, Instant};

fn manager(redis: &TestRedis, fair: bool) -> LockManager {
    let conn = ConnectionConfig::new(redis.url(), Some(1000.0), Some(300.0)).expect("valid");
    let opts = LockOptions {
        fair: Some(fair),
        ..LockOptions::default()
    };
    LockManager::new(conn, LockConfig::from_options(&opts).expect("valid")).expect("valid url")
}

async fn exists(c: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    let n: i64 = redis::cmd("EXISTS")
        .arg(key)
        .query_async(c)
        .await
        .expect("EXISTS");
    n == 1
}

async fn timed_out_attempt_is_released_once_redis_answers(fair: bool) {
    let redis = TestRedis::start();
    let m = manager(&redis, fair);
    let warm = m.acquire("warm", None, None).await.expect("no error");
    assert!(m.release(&warm.expect("granted")).await.expect("released"));

    let mut c = redis.conn().await;
    // Another owner's lock, which the cleanup must leave alone.
    let _: () = redis::cmd("SET")
        .arg("lock:held")
        .arg("other-owner")
        .arg("PX")
        .arg(60000)
        .query_async(&mut c)
        .await
        .expect("SET");
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query_async(&mut c)
        .await
        .expect("CLIENT PAUSE");
    let paused_at = Instant::now();
    let (free, held) = tokio::join!(
        m.acquire("stalled", None, None),
        m.acquire("held", None, None)
    );
    for outcome in [free, held] {
        let err = outcome.expect_err("no answer during the pause");
        assert_eq!(err.kind(), ErrorKind::Connection);
    }
    assert!(
        paused_at.elapsed() < Duration::from_millis(1200),
        "rejected after {:?}",
        paused_at.elapsed()
    );
    assert_eq!(m.pending_cleanups(), 2, "each attempt left its cleanup");

    tokio::time::sleep_until((paused_at + Duration::from_millis(1500)).into()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while exists(&mut c, "lock:stalled").await || m.pending_cleanups() > 0 {
        assert!(
            Instant::now() < deadline,
            "the attempt's key (or its cleanup) is still there"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // In fair mode the refused attempt queued: its entry is gone too (the
    // queue key would otherwise live 6 s).
    assert!(!exists(&mut c, "{lock:held}:queue").await);
    let owner: Option<String> = redis::cmd("GET")
        .arg("lock:held")
        .query_async(&mut c)
        .await
        .expect("GET");
    assert_eq!(owner.as_deref(), Some("other-owner"));
    let settled = Instant::now();
    m.settle().await;
    assert!(settled.elapsed() < Duration::from_millis(500));
}

#[tokio::test]
async fn a_timed_out_attempt_is_released_once_redis_answers() {
    timed_out_attempt_is_released_once_redis_answers(false).await;
}

#[tokio::test]
async fn a_timed_out_fair_attempt_is_released_once_redis_answers() {
    timed_out_attempt_is_released_once_redis_answers(true).await;
}
