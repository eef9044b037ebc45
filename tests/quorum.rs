//! The Redlock quorum manager against five real `redis-server`s.

#![deny(clippy::too_many_lines)]

mod common;

use common::TestRedis;
use dist_lock::error::ErrorKind;
use dist_lock::options::{ConnectionConfig, LockConfig, LockOptions};
use dist_lock::quorum::QuorumManager;
use std::time::{Duration, Instant};

fn quorum(servers: &[TestRedis], ttl: f64, max_retries: f64) -> QuorumManager {
    let nodes = servers
        .iter()
        .map(|r| ConnectionConfig::new(r.url(), Some(500.0), Some(1000.0)).expect("valid"))
        .collect();
    let opts = LockOptions {
        ttl: Some(ttl),
        retry_delay: Some(20.0),
        max_retries: Some(max_retries),
        ..LockOptions::default()
    };
    QuorumManager::new(nodes, LockConfig::from_options(&opts).expect("valid")).expect("valid")
}

fn five() -> Vec<TestRedis> {
    (0..5).map(|_| TestRedis::start()).collect()
}

async fn holders(servers: &[TestRedis], key: &str, id: &str) -> usize {
    let mut n = 0;
    for s in servers {
        let mut c = s.conn().await;
        let v: Option<String> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("get");
        if v.as_deref() == Some(id) {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_grant_holds_a_majority_and_excludes_others_until_released() {
    let servers = five();
    let a = quorum(&servers, 10_000.0, 0.0);
    let b = quorum(&servers, 10_000.0, 0.0);
    let held = a
        .acquire("r", None, None)
        .await
        .expect("ok")
        .expect("granted");
    assert_eq!(held.fencing_token, None, "no token in Redlock mode");
    assert_eq!(holders(&servers, "lock:r", &held.id).await, 5);
    for s in &servers {
        let mut c = s.conn().await;
        let n: i64 = redis::cmd("EXISTS")
            .arg("{lock:r}:fence")
            .query_async(&mut c)
            .await
            .expect("exists");
        assert_eq!(n, 0, "no fencing counter is kept on a Redlock master");
    }
    assert!(b.acquire("r", None, None).await.expect("ok").is_none());
    // The refused attempt was undone: nothing of it is left on any master.
    assert_eq!(a.is_locked("r").await, Ok(true));
    assert_eq!(a.release(&held).await, Ok(true));
    assert_eq!(holders(&servers, "lock:r", &held.id).await, 0);
    assert!(b.acquire("r", None, None).await.expect("ok").is_some());
}

#[tokio::test]
async fn a_minority_down_is_tolerated_a_majority_down_is_a_clear_error() {
    let mut servers = five();
    let m = quorum(&servers, 10_000.0, 0.0);
    servers[0].kill();
    servers[1].kill();
    let held = m
        .acquire("q", None, None)
        .await
        .expect("ok")
        .expect("granted with 3 of 5");
    assert_eq!(m.release(&held).await, Ok(true));
    servers[2].kill();
    let started = Instant::now();
    let err = m.acquire("q", None, None).await.expect_err("2 of 5 answer");
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(
        err.message().contains("Redlock acquire: only 2 of 5"),
        "{}",
        err.message()
    );
    let port = servers[2].port.to_string();
    assert!(
        err.message().contains(&port),
        "names the failed master: {}",
        err.message()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    servers[2].restart();
    let again = m.acquire("q", None, None).await;
    assert!(matches!(again, Ok(Some(_))), "{again:?}");
}

#[tokio::test]
async fn a_split_vote_is_undone_and_retried() {
    let servers = five();
    // Someone else holds the lock on two masters only: a minority.
    for s in &servers[..2] {
        let mut c = s.conn().await;
        let _: () = redis::cmd("SET")
            .arg("lock:s")
            .arg("other")
            .arg("PX")
            .arg(300)
            .query_async(&mut c)
            .await
            .expect("set");
    }
    let m = quorum(&servers, 10_000.0, -1.0);
    let held = m
        .acquire("s", None, None)
        .await
        .expect("ok")
        .expect("granted");
    // 3 of 5 at once is a majority: granted on the first attempt.
    assert_eq!(held.acquired_on_attempt, 1);
    assert_eq!(m.release(&held).await, Ok(true));
    // Someone holds it on three: refused, and the two we took are undone.
    for s in &servers[..3] {
        let mut c = s.conn().await;
        let _: () = redis::cmd("SET")
            .arg("lock:t")
            .arg("other")
            .arg("PX")
            .arg(10_000)
            .query_async(&mut c)
            .await
            .expect("set");
    }
    let m0 = quorum(&servers, 10_000.0, 0.0);
    assert!(m0.acquire("t", None, None).await.expect("ok").is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in &servers[3..] {
        let mut c = s.conn().await;
        let n: i64 = redis::cmd("EXISTS")
            .arg("lock:t")
            .query_async(&mut c)
            .await
            .expect("exists");
        assert_eq!(n, 0, "the minority grant was released");
    }
}

#[tokio::test]
async fn extend_needs_a_majority() {
    let servers = five();
    let m = quorum(&servers, 2_000.0, 0.0);
    let held = m
        .acquire("e", None, None)
        .await
        .expect("ok")
        .expect("granted");
    m.extend(&held, 5_000).await.expect("extended");
    for s in &servers[..3] {
        let mut c = s.conn().await;
        let _: i64 = redis::cmd("DEL")
            .arg("lock:e")
            .query_async(&mut c)
            .await
            .expect("del");
    }
    let err = m.extend(&held, 5_000).await.expect_err("lost on 3 of 5");
    assert_eq!(err.kind(), ErrorKind::LockLost);
}

#[tokio::test]
async fn fair_mode_and_wait_replicas_are_refused() {
    let servers = five();
    let m = quorum(&servers, 1_000.0, 0.0);
    let fair = LockOptions {
        fair: Some(true),
        ..LockOptions::default()
    };
    let err = m.acquire("f", Some(&fair), None).await.expect_err("fair");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("fair"));
}
