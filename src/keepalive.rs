//! Auto-extension: a Tokio task per lock that extends it to its TTL each time
//! a third of the TTL has passed, until it is released or found lost. It
//! runs off the JavaScript thread, so a blocked event loop does not stop it.

use crate::clock;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::{self, HeldLock};
use crate::options::{AUTO_EXTEND_DIVISOR, AUTO_EXTEND_RETRY_MS};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What the auto-extension of a lock reports to its owner.
#[derive(Debug)]
pub enum KeepAliveEvent {
    /// An extension succeeded: the lock is valid for another TTL.
    Extended,
    /// An extension failed (connection or Redis error); it is retried until
    /// the lock's validity runs out.
    Failed(Error),
    /// The lock is lost (reported once, never after a release).
    Lost(Error),
}

/// What auto-extension needs of a lock manager.
pub trait Extender: Send + Sync + 'static {
    /// Owner-checked extension of `held` to `ttl_ms`, renewing its validity.
    fn extend_lock(&self, held: &HeldLock, ttl_ms: u64) -> impl Future<Output = Result<()>> + Send;
    /// Flips to `true` when the manager is closed.
    fn closed_signal(&self) -> watch::Receiver<bool>;
}

/// Keeps `held` alive from a Tokio task.
///
/// The lock is lost, and `on_event` called once with
/// [`KeepAliveEvent::Lost`], when an extension finds it no longer ours, when
/// its validity runs out before an extension succeeds (Redis unreachable or
/// stalled: failed attempts are retried meanwhile, each reported as
/// [`KeepAliveEvent::Failed`]), or when the manager is closed. After a
/// release nothing is reported.
pub fn spawn<M: Extender>(
    manager: Arc<M>,
    held: Arc<HeldLock>,
    on_event: impl Fn(KeepAliveEvent) + Send + Sync + 'static,
) {
    tokio::spawn(async move {
        if let Some(err) = keep_alive(&*manager, &held, &on_event).await {
            if !held.is_released() {
                on_event(KeepAliveEvent::Lost(err));
            }
        }
    });
}

/// The auto-extension loop: `None` when stopped by a release, else why
/// the lock is lost.
async fn keep_alive<M: Extender>(
    manager: &M,
    held: &HeldLock,
    on_event: &(impl Fn(KeepAliveEvent) + Send + Sync),
) -> Option<Error> {
    let mut stop = held.stop_signal();
    let mut closed = manager.closed_signal();
    let closed_error = || {
        lock::lost(
            &held.key,
            "the lock manager was closed, so the lock is no longer extended",
        )
    };
    loop {
        let pause = clock::duration_ms((held.ttl_ms() / AUTO_EXTEND_DIVISOR).max(1));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return None,
            _ = closed.wait_for(|c| *c) => return Some(closed_error()),
        }
        // Extend, retrying failed attempts, until it succeeds, the lock is
        // found lost, or its validity runs out.
        loop {
            let deadline = tokio::time::Instant::from_std(held.valid_until());
            let attempt = tokio::select! {
                // The TTL as it is now: a manual extend() meanwhile set
                // the one to keep.
                // Boxed: the quorum's extension nests many futures, and
                // inlining them here overflows the compiler's layout depth.
                r = Box::pin(manager.extend_lock(held, held.ttl_ms())) => r,
                _ = tokio::time::sleep_until(deadline) => {
                    return Some(lock::lost(&held.key, "its validity ran out before an extension succeeded"));
                }
                _ = stop.wait_for(|s| *s) => return None,
                _ = closed.wait_for(|c| *c) => return Some(closed_error()),
            };
            let err = match attempt {
                Ok(()) => {
                    if !held.is_released() {
                        on_event(KeepAliveEvent::Extended);
                    }
                    break;
                }
                Err(e) if e.kind() == ErrorKind::LockLost || e.kind() == ErrorKind::Closed => {
                    return Some(if e.kind() == ErrorKind::Closed {
                        closed_error()
                    } else {
                        e
                    });
                }
                Err(e) => {
                    on_event(KeepAliveEvent::Failed(e.clone()));
                    e
                }
            };
            let retry = tokio::time::sleep(Duration::from_millis(AUTO_EXTEND_RETRY_MS));
            tokio::select! {
                _ = retry => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Some(lock::lost(
                        &held.key,
                        &format!("its validity ran out before an extension succeeded (last error: {err})"),
                    ));
                }
                _ = stop.wait_for(|s| *s) => return None,
                _ = closed.wait_for(|c| *c) => return Some(closed_error()),
            }
        }
    }
}
