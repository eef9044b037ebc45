//! The eviction check of a lock manager against a real `redis-server`.

#![deny(clippy::too_many_lines)]

mod common;

use common::TestRedis;
use dist_lock::error::ErrorKind;
use dist_lock::eviction::Warning;
use dist_lock::manager::LockManager;
use dist_lock::options::{ConnectionConfig, LockConfig, LockOptions};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn manager(redis: &TestRedis, policy: &str) -> LockManager {
    let conn = ConnectionConfig::new(redis.url(), Some(1000.0), Some(2000.0)).expect("valid");
    let opts = LockOptions {
        eviction_policy: Some(policy.into()),
        max_retries: Some(0.0),
        ..LockOptions::default()
    };
    LockManager::new(conn, LockConfig::from_options(&opts).expect("valid")).expect("valid url")
}

async fn config_set(redis: &TestRedis, name: &str, value: &str) {
    let mut c = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query_async(&mut c)
        .await
        .expect("config set");
}

async fn exists(redis: &TestRedis, key: &str) -> i64 {
    let mut c = redis.conn().await;
    redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut c)
        .await
        .expect("exists")
}

/// Takes the lock of "res" (it must be granted) and releases it.
async fn lock_and_release(m: &LockManager) {
    let held = m
        .acquire("res", None, None)
        .await
        .expect("ok")
        .expect("granted");
    assert_eq!(m.release(&held).await, Ok(true));
}

/// Waits (at most 10 s) until `seen` holds `count` warnings.
async fn warnings_reach(seen: &Mutex<Vec<Warning>>, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().expect("lock").len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn refuse_takes_no_lock_on_an_evicting_server() {
    let redis = TestRedis::start();
    config_set(&redis, "maxmemory", "2mb").await;
    config_set(&redis, "maxmemory-policy", "volatile-lru").await;
    let m = manager(&redis, "refuse");
    let err = m.acquire("res", None, None).await.err().map(|e| e.kind());
    assert_eq!(err, Some(ErrorKind::Eviction));
    assert_eq!(exists(&redis, "lock:res").await, 0);
    // Fixed on the server: accepted once the refusal is checked again.
    config_set(&redis, "maxmemory-policy", "noeviction").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match m.acquire("res", None, None).await {
            Ok(Some(held)) => {
                assert_eq!(m.release(&held).await, Ok(true));
                break;
            }
            Err(e) if e.kind() == ErrorKind::Eviction && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => panic!("not granted once safe: {other:?}"),
        }
    }
}

#[tokio::test]
async fn warn_reports_once_per_connection_and_again_after_a_reconnection() {
    let redis = TestRedis::start();
    config_set(&redis, "maxmemory", "2mb").await;
    config_set(&redis, "maxmemory-policy", "allkeys-lru").await;
    let m = manager(&redis, "warn");
    let seen: Arc<Mutex<Vec<Warning>>> = Arc::default();
    let sink = Arc::clone(&seen);
    m.on_warning(Arc::new(move |w| sink.lock().expect("lock").push(w)));
    for _ in 0..3 {
        lock_and_release(&m).await;
    }
    // The check runs beside the first attempt, in a task of its own.
    warnings_reach(&seen, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.lock().expect("lock").len(), 1);
    let mut c = redis.conn().await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query_async(&mut c)
        .await
        .expect("client kill");
    lock_and_release(&m).await;
    warnings_reach(&seen, 2).await;
    let seen = seen.lock().expect("lock");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].policy.as_deref(), Some("allkeys-lru"));
    assert_eq!(format!("redis://{}", seen[1].server), redis.url());
}
