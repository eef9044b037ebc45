//! The lock manager against a real `redis-server`.

#![deny(clippy::too_many_lines)]

mod common;

use common::TestRedis;
use dist_lock::error::ErrorKind;
use dist_lock::manager::{KeepAliveEvent, LockManager};
use dist_lock::options::{ConnectionConfig, LockConfig, LockOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn manager(redis: &TestRedis, opts: LockOptions) -> LockManager {
    let conn = ConnectionConfig::new(redis.url(), Some(1000.0), Some(2000.0)).expect("valid");
    LockManager::new(conn, LockConfig::from_options(&opts).expect("valid")).expect("valid url")
}

fn opts(ttl: f64, retry_delay: f64, max_retries: f64) -> LockOptions {
    LockOptions {
        ttl: Some(ttl),
        retry_delay: Some(retry_delay),
        max_retries: Some(max_retries),
        ..LockOptions::default()
    }
}

#[tokio::test]
async fn acquire_writes_the_1_0_format_and_release_deletes_it() {
    let redis = TestRedis::start();
    let m = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let grant = m
        .acquire("res", None, None)
        .await
        .expect("no error")
        .expect("granted");
    assert_eq!(grant.key, "lock:res");
    assert_eq!(grant.acquired_on_attempt, 1);
    assert_eq!(grant.id.len(), 36);

    let mut c = redis.conn().await;
    let value: Option<String> = redis::cmd("GET")
        .arg("lock:res")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(value.as_deref(), Some(grant.id.as_str()));
    let pttl: i64 = redis::cmd("PTTL")
        .arg("lock:res")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(pttl > 0 && pttl <= 10_000, "pttl {pttl}");

    assert_eq!(m.release(&grant).await, Ok(true));
    assert_eq!(m.release(&grant).await, Ok(false));
    let exists: i64 = redis::cmd("EXISTS")
        .arg("lock:res")
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn limited_retries_give_none_after_n_plus_one_attempts() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let _held = holder
        .acquire("busy", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = manager(&redis, opts(10_000.0, 30.0, 3.0));
    let started = Instant::now();
    assert!(waiter
        .acquire("busy", None, None)
        .await
        .expect("no error")
        .is_none());
    // Three pauses of 30 ms between four attempts.
    assert!(started.elapsed() >= Duration::from_millis(90));
}

#[tokio::test]
async fn a_waiter_gets_the_lock_once_released_and_counts_attempts() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(10_000.0, 20.0, -1.0)));
    let first = m
        .acquire("shared", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = {
        let m = Arc::clone(&m);
        tokio::spawn(async move {
            m.acquire("shared", None, None)
                .await
                .map(|o| o.map(|h| (h.id.clone(), h.acquired_on_attempt, h.acquire_delay_ms)))
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(m.release(&first).await, Ok(true));
    let second = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("granted in time")
        .expect("task ran")
        .expect("no error")
        .expect("granted");
    let (second_id, second_attempts, second_delay) = second;
    assert!(second_attempts > 1);
    assert!(second_delay >= 100, "{}", second_delay);
    assert_ne!(second_id, first.id);
}

#[tokio::test]
async fn release_and_extend_never_touch_another_owners_lock() {
    let redis = TestRedis::start();
    let m = manager(&redis, opts(100.0, 10.0, 0.0));
    let old = m
        .acquire("k", None, None)
        .await
        .expect("ok")
        .expect("granted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let new = other
        .acquire("k", None, None)
        .await
        .expect("ok")
        .expect("granted after expiry");

    assert_eq!(m.release(&old).await, Ok(false));
    let err = m.extend(&old, 60_000).await.expect_err("lost");
    assert_eq!(err.kind(), ErrorKind::LockLost);

    let mut c = redis.conn().await;
    let value: Option<String> = redis::cmd("GET")
        .arg("lock:k")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(value.as_deref(), Some(new.id.as_str()));
    let pttl: i64 = redis::cmd("PTTL")
        .arg("lock:k")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(
        pttl <= 10_000,
        "the other owner's ttl was not changed: {pttl}"
    );
}

#[tokio::test]
async fn extend_resets_the_ttl_and_does_not_resurrect() {
    let redis = TestRedis::start();
    let m = manager(&redis, opts(1_000.0, 10.0, 0.0));
    let g = m
        .acquire("e", None, None)
        .await
        .expect("ok")
        .expect("granted");
    m.extend(&g, 20_000).await.expect("extended");
    let mut c = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("lock:e")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(pttl > 10_000, "pttl {pttl}");
    let _: i64 = redis::cmd("DEL")
        .arg("lock:e")
        .query_async(&mut c)
        .await
        .expect("del");
    let err = m.extend(&g, 20_000).await.expect_err("lost");
    assert_eq!(err.kind(), ErrorKind::LockLost);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("lock:e")
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn scripts_survive_script_flush() {
    let redis = TestRedis::start();
    let m = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let g = m
        .acquire("f", None, None)
        .await
        .expect("ok")
        .expect("granted");
    m.extend(&g, 5_000).await.expect("extended");
    let mut c = redis.conn().await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut c)
        .await
        .expect("flush");
    assert_eq!(m.release(&g).await, Ok(true));
}

#[tokio::test]
async fn close_ends_waiting_acquires_and_later_calls() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(10_000.0, 20.0, -1.0)));
    let held = m
        .acquire("c", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.acquire("c", None, None).await.map(|o| o.is_some()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    m.close();
    let result = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("ends promptly")
        .expect("task ran");
    assert_eq!(result.expect_err("closed").kind(), ErrorKind::Closed);
    let err = m.release(&held).await.expect_err("closed");
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert_eq!(
        m.acquire("d", None, None).await.expect_err("closed").kind(),
        ErrorKind::Closed
    );
}

#[tokio::test]
async fn unreachable_redis_fails_within_the_bound() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let conn = ConnectionConfig::new(
        format!("redis://127.0.0.1:{port}"),
        Some(300.0),
        Some(300.0),
    )
    .expect("valid");
    let m = LockManager::new(conn, LockConfig::default()).expect("valid");
    let started = Instant::now();
    let err = m.acquire("x", None, None).await.expect_err("unreachable");
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_redis_error_reply_ends_the_acquire() {
    let redis = TestRedis::start();
    let mut c = redis.conn().await;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .query_async(&mut c)
        .await
        .expect("config");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut c)
        .await
        .expect("config");
    let m = manager(&redis, opts(10_000.0, 10.0, -1.0));
    let err = tokio::time::timeout(Duration::from_secs(5), m.acquire("oom", None, None))
        .await
        .expect("not retried forever")
        .expect_err("OOM");
    assert_eq!(err.kind(), ErrorKind::Redis, "{}", err.message());
    assert!(err.message().contains("OOM"), "{}", err.message());
}

#[tokio::test]
async fn fencing_tokens_increase_across_managers() {
    let redis = TestRedis::start();
    let a = manager(&redis, opts(10_000.0, 5.0, -1.0));
    let b = manager(&redis, opts(500.0, 1.0, -1.0));
    let mut last = 0;
    for i in 0..20 {
        let m = if i % 2 == 0 { &a } else { &b };
        let held = m
            .acquire("fenced", None, None)
            .await
            .expect("ok")
            .expect("granted");
        assert!(
            held.fencing_token.expect("a token") > last,
            "{:?} after {last}",
            held.fencing_token
        );
        last = held.fencing_token.expect("a token");
        assert_eq!(m.release(&held).await, Ok(true));
    }
    let mut c = redis.conn().await;
    let counter: u64 = redis::cmd("GET")
        .arg("{lock:}:fencing")
        .query_async(&mut c)
        .await
        .expect("counter");
    assert_eq!(counter, last);
}

#[tokio::test]
async fn auto_extension_keeps_the_lock_and_reports_its_loss() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(300.0, 10.0, 0.0)));
    let held = Arc::new(
        m.acquire("auto", None, None)
            .await
            .expect("ok")
            .expect("granted"),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let extensions = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&extensions);
    m.auto_extend(Arc::clone(&held), move |event| match event {
        KeepAliveEvent::Extended => {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        KeepAliveEvent::Lost(err) => {
            let _ = tx.send(err);
        }
        KeepAliveEvent::Failed(_) => {}
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    // Every ttl/3 = 100 ms: some extensions were reported (a slow machine
    // may fit fewer than ten in a second).
    assert!(extensions.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    let other = manager(&redis, opts(300.0, 10.0, 0.0));
    assert!(other
        .acquire("auto", None, None)
        .await
        .expect("ok")
        .is_none());
    assert!(held.remaining_validity_ms() > 0.0);
    assert!(rx.try_recv().is_err(), "no loss reported while held");

    // Someone deletes the key behind the holder's back.
    let mut c = redis.conn().await;
    let _: i64 = redis::cmd("DEL")
        .arg("lock:auto")
        .query_async(&mut c)
        .await
        .expect("del");
    let err = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("loss reported in time")
        .expect("an error");
    assert_eq!(err.kind(), ErrorKind::LockLost);
}

#[tokio::test]
async fn a_released_auto_extended_lock_reports_nothing() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(1_000.0, 10.0, 0.0)));
    let held = Arc::new(
        m.acquire("r", None, None)
            .await
            .expect("ok")
            .expect("granted"),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    m.auto_extend(Arc::clone(&held), move |event| {
        if let KeepAliveEvent::Lost(err) = event {
            let _ = tx.send(err);
        }
    });
    // Past the first extension (at ttl/3), with room for a slow machine.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.release(&held).await, Ok(true));
    // The task ends, dropping the sender, without reporting a loss.
    let ended = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert!(matches!(ended, Ok(None)), "{ended:?}");
}

#[tokio::test]
async fn wait_replicas_without_replicas_fails_and_leaves_no_lock() {
    let redis = TestRedis::start();
    let mut o = opts(10_000.0, 10.0, 0.0);
    o.wait_replicas = Some((1.0, 100.0));
    let m = manager(&redis, o);
    let err = m.acquire("w", None, None).await.expect_err("no replica");
    assert_eq!(err.kind(), ErrorKind::NotReplicated, "{}", err.message());
    let mut c = redis.conn().await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg("lock:w")
        .query_async(&mut c)
        .await
        .expect("exists");
    assert_eq!(exists, 0);
}

#[tokio::test]
async fn the_first_call_after_a_restart_succeeds() {
    let mut redis = TestRedis::start();
    let m = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let held = m
        .acquire("r", None, None)
        .await
        .expect("ok")
        .expect("granted");
    assert_eq!(m.release(&held).await, Ok(true));
    redis.restart();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = m
        .acquire("r", None, None)
        .await
        .expect("reconnects")
        .expect("granted");
    assert_eq!(m.release(&held).await, Ok(true));
}

fn slow_poll(ttl: f64) -> LockOptions {
    // A 10 s retryDelay: any grant within a second or two came from a wake-up.
    opts(ttl, 10_000.0, -1.0)
}

#[tokio::test]
async fn a_release_wakes_a_waiter_long_before_its_retry_delay() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(30_000.0, 10.0, 0.0));
    let held = holder
        .acquire("wake", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = Arc::new(manager(&redis, slow_poll(30_000.0)));
    let task = {
        let waiter = Arc::clone(&waiter);
        tokio::spawn(async move {
            waiter
                .acquire("wake", None, None)
                .await
                .map(|g| g.map(|g| g.acquired_on_attempt))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let released_at = Instant::now();
    assert_eq!(holder.release(&held).await, Ok(true));
    let attempts = tokio::time::timeout(Duration::from_secs(3), task)
        .await
        .expect("woken well before retryDelay")
        .expect("task ran")
        .expect("no error")
        .expect("granted");
    assert!(released_at.elapsed() < Duration::from_secs(3));
    assert!(attempts >= 2);
}

#[tokio::test]
async fn ttl_expiry_wakes_a_waiter() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(400.0, 10.0, 0.0));
    let _held = holder
        .acquire("expiry", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = manager(&redis, slow_poll(30_000.0));
    let started = Instant::now();
    let granted =
        tokio::time::timeout(Duration::from_secs(5), waiter.acquire("expiry", None, None))
            .await
            .expect("woken at expiry, not after retryDelay")
            .expect("no error");
    assert!(granted.is_some());
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn timeout_gives_none_and_abort_gives_aborted_and_both_leave_nothing() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(30_000.0, 10.0, 0.0));
    let held = holder
        .acquire("t", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = manager(&redis, slow_poll(30_000.0));

    let mut timed = slow_poll(30_000.0);
    timed.timeout = Some(300.0);
    timed.fair = Some(true);
    let started = Instant::now();
    let result = waiter
        .acquire("t", Some(&timed), None)
        .await
        .expect("no error");
    assert!(result.is_none());
    assert!(started.elapsed() >= Duration::from_millis(290));

    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut fair = slow_poll(30_000.0);
    fair.fair = Some(true);
    let aborter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tx.send_replace(true);
    });
    let err = waiter
        .acquire("t", Some(&fair), Some(rx))
        .await
        .expect_err("aborted");
    assert_eq!(err.kind(), ErrorKind::Aborted);
    aborter.await.expect("ran");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut c = redis.conn().await;
    let queued: i64 = redis::cmd("ZCARD")
        .arg("{lock:t}:queue")
        .query_async(&mut c)
        .await
        .expect("zcard");
    assert_eq!(queued, 0, "no queue entry left");
    let value: Option<String> = redis::cmd("GET")
        .arg("lock:t")
        .query_async(&mut c)
        .await
        .expect("get");
    assert_eq!(
        value.as_deref(),
        Some(held.id.as_str()),
        "only the holder's lock"
    );
}

#[tokio::test]
async fn fair_mode_grants_in_arrival_order_across_managers() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(30_000.0, 10.0, 0.0));
    let held = holder
        .acquire("fifo", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let mut fair = opts(30_000.0, 50.0, -1.0);
    fair.fair = Some(true);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    let mut managers = Vec::new();
    for i in 0..4 {
        let m = Arc::new(manager(&redis, fair.clone()));
        managers.push(Arc::clone(&m));
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let held = m
                .acquire("fifo", None, None)
                .await
                .expect("ok")
                .expect("granted");
            tx.send(i).expect("send");
            tokio::time::sleep(Duration::from_millis(20)).await;
            m.release(&held).await.expect("released");
        }));
        // Arrive one after the other.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(holder.release(&held).await, Ok(true));
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("done")
            .expect("ran");
    }
    let mut order = Vec::new();
    while let Ok(i) = rx.try_recv() {
        order.push(i);
    }
    assert_eq!(order, vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn waiters_in_one_manager_are_served_in_order() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(30_000.0, 1_000.0, -1.0)));
    let held = m
        .acquire("local", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let m = Arc::clone(&m);
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let held = m
                .acquire("local", None, None)
                .await
                .expect("ok")
                .expect("granted");
            tx.send(i).expect("send");
            m.release(&held).await.expect("released");
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(m.release(&held).await, Ok(true));
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("done")
            .expect("ran");
    }
    let mut order = Vec::new();
    while let Ok(i) = rx.try_recv() {
        order.push(i);
    }
    assert_eq!(order, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_killed_subscription_connection_still_lets_the_waiter_in() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(30_000.0, 10.0, 0.0));
    let held = holder
        .acquire("kill", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let waiter = Arc::new(manager(&redis, slow_poll(30_000.0)));
    let task = {
        let waiter = Arc::clone(&waiter);
        tokio::spawn(async move { waiter.acquire("kill", None, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = redis.conn().await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut c)
        .await
        .expect("client kill");
    assert_eq!(killed, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(holder.release(&held).await, Ok(true));
    let granted = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("granted after the subscription came back")
        .expect("ran")
        .expect("no error");
    assert!(granted.is_some());
}

#[tokio::test]
async fn a_manual_extend_sets_the_ttl_auto_extension_keeps() {
    let redis = TestRedis::start();
    let m = Arc::new(manager(&redis, opts(600.0, 10.0, 0.0)));
    let held = Arc::new(
        m.acquire("ext", None, None)
            .await
            .expect("ok")
            .expect("granted"),
    );
    m.auto_extend(Arc::clone(&held), |_| {});
    m.extend(&held, 3_000).await.expect("extended");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let mut c = redis.conn().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg("lock:ext")
        .query_async(&mut c)
        .await
        .expect("pttl");
    assert!(
        pttl > 1_500,
        "auto-extension renews the new 3 s ttl, pttl {pttl}"
    );
    assert_eq!(m.release(&held).await, Ok(true));
}

#[tokio::test]
async fn wait_replicas_must_time_out_before_the_command_does() {
    let redis = TestRedis::start();
    let mut o = opts(10_000.0, 10.0, 0.0);
    o.wait_replicas = Some((1.0, 2_000.0));
    let conn = ConnectionConfig::new(redis.url(), Some(1000.0), Some(2000.0)).expect("valid");
    let config = LockConfig::from_options(&o).expect("valid on its own");
    let err = LockManager::new(conn, config).err().expect("refused");
    assert!(
        err.message().contains("waitReplicas.timeoutMs"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn fair_waiters_of_one_manager_all_get_turns_without_stalls() {
    let redis = TestRedis::start();
    let mut fair = opts(10_000.0, 50.0, -1.0);
    fair.fair = Some(true);
    let m = Arc::new(manager(&redis, fair));
    let stop_at = Instant::now() + Duration::from_millis(1_500);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let m = Arc::clone(&m);
        tasks.push(tokio::spawn(async move {
            let (mut grants, mut longest) = (0u32, Duration::ZERO);
            while Instant::now() < stop_at {
                let asked = Instant::now();
                let held = m
                    .acquire("turns", None, None)
                    .await
                    .expect("ok")
                    .expect("granted");
                longest = longest.max(asked.elapsed());
                grants += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
                m.release(&held).await.expect("released");
            }
            (grants, longest)
        }));
    }
    for t in tasks {
        let (grants, longest) = tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("done")
            .expect("ran");
        assert!(grants >= 1, "a task got no turn");
        // A stale queue entry would stall a waiter for the entry's 3 s life.
        assert!(longest < Duration::from_millis(2_000), "waited {longest:?}");
    }
}

#[tokio::test]
async fn only_the_head_of_a_managers_queue_takes_a_place_in_the_fair_queue() {
    let redis = TestRedis::start();
    let holder = manager(&redis, opts(10_000.0, 10.0, 0.0));
    let held = holder
        .acquire("place", None, None)
        .await
        .expect("ok")
        .expect("granted");
    let mut fair = opts(10_000.0, 50.0, -1.0);
    fair.fair = Some(true);
    let m = Arc::new(manager(&redis, fair));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                let held = m
                    .acquire("place", None, None)
                    .await
                    .expect("ok")
                    .expect("granted");
                m.release(&held).await.expect("released");
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = redis.conn().await;
    let queued: i64 = redis::cmd("ZCARD")
        .arg("{lock:place}:queue")
        .query_async(&mut c)
        .await
        .expect("zcard");
    // The others wait in the manager's local queue; an entry of theirs in
    // Redis would not be refreshed and would block the queue when first.
    assert_eq!(queued, 1);
    assert_eq!(holder.release(&held).await, Ok(true));
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("done")
            .expect("ran");
    }
}
