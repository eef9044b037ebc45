//! Saturating time arithmetic for durations that users choose.
//!
//! Options such as `ttl`, `retryDelay × maxRetries` or `timeout` may be
//! larger than the monotonic clock can represent once added to "now"
//! (`Instant + Duration` panics on overflow). Every instant computed from a
//! user-controlled duration goes through these helpers instead: a duration
//! beyond [`FOREVER`] means "practically forever", and never a panic.

use std::time::{Duration, Instant};

/// The longest span the core ever schedules: 100 years (of 365 days). A
/// longer wait, deadline or validity is treated as this one, or as no limit
/// at all where "no limit" can be said ([`checked_after`]).
pub const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `ms` milliseconds as a [`Duration`], capped at [`FOREVER`].
pub fn duration_ms(ms: u64) -> Duration {
    Duration::from_millis(ms).min(FOREVER)
}

/// `start + span`, or `None` when that lies beyond [`FOREVER`] (or beyond
/// what the clock can represent): a deadline that never comes.
pub fn checked_after(start: Instant, span: Duration) -> Option<Instant> {
    if span > FOREVER {
        return None;
    }
    start.checked_add(span)
}

/// `start + span`, capped at `start + FOREVER` (and, on a clock that cannot
/// even represent that, at the latest instant it can: the span is halved
/// until the sum fits, so this always returns).
pub fn saturating_after(start: Instant, span: Duration) -> Instant {
    let mut span = span.min(FOREVER);
    loop {
        if let Some(at) = start.checked_add(span) {
            return at;
        }
        span /= 2;
    }
}

/// [`saturating_after`] for Tokio's clock.
pub fn tokio_after(start: tokio::time::Instant, span: Duration) -> tokio::time::Instant {
    tokio::time::Instant::from_std(saturating_after(start.into_std(), span))
}

/// `span × times`, saturating at [`Duration::MAX`] (which every helper
/// above reads as "beyond [`FOREVER`]").
pub fn saturating_times(span: Duration, times: u64) -> Duration {
    let nanos = span.as_nanos().saturating_mul(u128::from(times));
    u64::try_from(nanos)
        .map(Duration::from_nanos)
        .unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_ms_caps_at_forever() {
        assert_eq!(duration_ms(1_500), Duration::from_millis(1_500));
        assert_eq!(duration_ms(u64::MAX), FOREVER);
        assert_eq!(duration_ms(9_007_199_254_740_991), FOREVER);
    }

    #[test]
    fn checked_after_is_none_beyond_forever() {
        let now = Instant::now();
        assert_eq!(
            checked_after(now, Duration::from_millis(250)),
            Some(now + Duration::from_millis(250))
        );
        assert_eq!(checked_after(now, FOREVER), Some(now + FOREVER));
        assert_eq!(checked_after(now, FOREVER + Duration::from_nanos(1)), None);
        assert_eq!(checked_after(now, Duration::MAX), None);
    }

    #[test]
    fn saturating_after_never_panics_and_caps() {
        let now = Instant::now();
        assert_eq!(saturating_after(now, Duration::ZERO), now);
        assert_eq!(
            saturating_after(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
        assert_eq!(saturating_after(now, Duration::MAX), now + FOREVER);
        let t = tokio::time::Instant::now();
        assert_eq!(tokio_after(t, Duration::MAX), t + FOREVER);
    }

    #[test]
    fn saturating_times_multiplies_or_saturates() {
        let ms = Duration::from_millis;
        assert_eq!(saturating_times(ms(100), 3), ms(300));
        assert_eq!(saturating_times(ms(100), 0), Duration::ZERO);
        assert_eq!(saturating_times(Duration::ZERO, u64::MAX), Duration::ZERO);
        assert_eq!(
            saturating_times(ms(10_000_000_000_000), 1 << 31),
            Duration::MAX
        );
        assert_eq!(saturating_times(ms(1), 1 << 40), ms(1 << 40));
        // More repetitions than u32 holds, of even the shortest span: beyond FOREVER.
        assert!(saturating_times(Duration::from_nanos(1), u64::MAX) > FOREVER);
        assert!(saturating_times(ms(1), 9_007_199_254_740_991) > FOREVER);
    }
}
