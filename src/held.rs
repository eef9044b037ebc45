//! A lock granted to this process: its owner id, its validity (renewed by
//! each extension) and whether it was released here.

use crate::clock;
use crate::options::validity_ms_with;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// When and how a lock was granted (or last extended): its validity runs
/// from `sent_at`, the moment the command was sent, for `ttl_ms` less the
/// drift allowance.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub sent_at: Instant,
    pub ttl_ms: u64,
    /// Clock-drift allowance in millionths of the TTL.
    pub drift_ppm: u64,
}

/// A granted lock and what its holder knows about it.
///
/// Validity is kept on the monotonic clock: after a grant or an extension
/// sent at instant `s` with TTL `t`, the lock is surely held until
/// `s + t − drift` (see [`validity_ms`]). The instant is taken *before* the
/// command is sent, so network and queueing delays only shorten it.
#[derive(Debug)]
pub struct HeldLock {
    pub id: String,
    pub key: String,
    /// `None` where the mode has no honest token (Redlock quorum).
    pub fencing_token: Option<u64>,
    /// The key that keeps the fencing token in Redis while the lock is held
    /// (deleted by the release, extended with the lock); `None` without a
    /// token.
    pub token_key: Option<String>,
    /// How many acquisition attempts were made, the granting one included.
    pub acquired_on_attempt: u64,
    /// Milliseconds from the start of `acquire` to the grant.
    pub acquire_delay_ms: u64,
    /// The TTL last set on the key (the one auto-extension renews).
    ttl_ms: AtomicU64,
    /// The clock-drift allowance, in millionths of the TTL.
    drift_ppm: u64,
    valid_until: Mutex<Instant>,
    /// Set once the holder released the lock: auto-extension stops and no
    /// loss is reported any more.
    released: AtomicBool,
    /// Flips to `true` on release, waking the auto-extension task.
    stop: watch::Sender<bool>,
}

impl HeldLock {
    pub fn new(
        id: String,
        key: String,
        fencing_token: Option<u64>,
        acquired_on_attempt: u64,
        acquire_delay_ms: u64,
        grant: Grant,
    ) -> Self {
        let Grant {
            sent_at,
            ttl_ms,
            drift_ppm,
        } = grant;
        HeldLock {
            id,
            key,
            fencing_token,
            token_key: None,
            acquired_on_attempt,
            acquire_delay_ms,
            ttl_ms: AtomicU64::new(ttl_ms),
            drift_ppm,
            valid_until: Mutex::new(clock::saturating_after(
                sent_at,
                Duration::from_millis(validity_ms_with(ttl_ms, drift_ppm)),
            )),
            released: AtomicBool::new(false),
            stop: watch::Sender::new(false),
        }
    }

    /// The same lock, whose token is kept in `token_key`.
    pub fn with_token_key(mut self, token_key: String) -> Self {
        self.token_key = Some(token_key);
        self
    }

    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms.load(Ordering::Relaxed)
    }

    /// Until when the lock is surely held.
    pub fn valid_until(&self) -> Instant {
        *crate::sync::lock(&self.valid_until)
    }

    /// Milliseconds of validity left; negative once it ran out.
    pub fn remaining_validity_ms(&self) -> f64 {
        let until = self.valid_until();
        let now = Instant::now();
        if until >= now {
            (until - now).as_secs_f64() * 1000.0
        } else {
            -((now - until).as_secs_f64() * 1000.0)
        }
    }

    /// Records a successful extension sent at `sent_at` with `ttl_ms`.
    /// Commands on one connection complete in order, so the last one to
    /// complete is the one Redis applied last.
    pub fn renewed(&self, sent_at: Instant, ttl_ms: u64) {
        self.ttl_ms.store(ttl_ms, Ordering::Relaxed);
        *crate::sync::lock(&self.valid_until) = clock::saturating_after(
            sent_at,
            Duration::from_millis(validity_ms_with(ttl_ms, self.drift_ppm)),
        );
    }

    /// Marks the lock released and stops its auto-extension. Returns `false`
    /// if it was already marked.
    pub fn mark_released(&self) -> bool {
        let first = !self.released.swap(true, Ordering::SeqCst);
        self.stop.send_replace(true);
        first
    }

    /// Undoes [`HeldLock::mark_released`] after a release that failed, so that
    /// it can be tried again. Auto-extension, once stopped, stays stopped.
    pub fn unmark_released(&self) {
        self.released.store(false, Ordering::SeqCst);
    }

    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::SeqCst)
    }

    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }
}
