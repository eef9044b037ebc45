//! Unit tests of the options.

use super::*;
use crate::error::ErrorKind;

#[test]
fn patience_of_extreme_accepted_values_saturates_instead_of_panicking() {
    let now = std::time::Instant::now();
    let with = |retry_delay: f64, max_retries: f64, timeout: Option<f64>| {
        LockConfig::from_options(&LockOptions {
            retry_delay: Some(retry_delay),
            max_retries: Some(max_retries),
            timeout,
            ..LockOptions::default()
        })
        .expect("accepted values")
        .patience(now)
    };
    // The values of the report: 1e13 ms x 2^31 is beyond any clock.
    let p = with(1e13, 2f64.powi(31), None);
    assert_eq!(
        p.give_up_at, None,
        "no give-up time: wait practically forever"
    );
    // 1e13 ms is about 317 years: each wait is capped at 100.
    assert_eq!(p.retry_delay, clock::FOREVER);
    // The largest accepted values everywhere.
    let max = MAX_MS as f64;
    let p = with(max, max, Some(max));
    assert_eq!((p.give_up_at, p.deadline), (None, None));
    assert_eq!(p.retry_delay, clock::FOREVER);
    // Ordinary values are unchanged: 3 x 100 ms, and a 500 ms timeout.
    let p = with(100.0, 3.0, Some(500.0));
    assert_eq!(
        p.give_up_at,
        Some(now + std::time::Duration::from_millis(300))
    );
    assert_eq!(
        p.deadline,
        Some(now + std::time::Duration::from_millis(500))
    );
}

fn opts(f: impl FnOnce(&mut LockOptions)) -> Result<LockConfig> {
    let mut o = LockOptions::default();
    f(&mut o);
    LockConfig::from_options(&o)
}

#[test]
fn defaults_match_the_1_0_readme() {
    let c = opts(|_| {}).expect("defaults are valid");
    assert_eq!(c.ttl_ms, 30_000);
    assert_eq!(c.retry_delay_ms, 50);
    assert_eq!(c.max_retries, Retries::Unlimited);
    assert_eq!(c.key_prefix, "lock:");
}

#[test]
fn accepts_valid_values() {
    let c = opts(|o| {
        o.ttl = Some(1.0);
        o.retry_delay = Some(0.0);
        o.max_retries = Some(0.0);
        o.key_prefix = Some(String::new());
    })
    .expect("valid");
    assert_eq!(c.ttl_ms, 1);
    assert_eq!(c.retry_delay_ms, 0);
    assert_eq!(c.max_retries, Retries::Limited(0));
    assert_eq!(c.key_prefix, "");
}

#[test]
fn rejects_bad_values_naming_the_option() {
    let cases: Vec<(&str, Result<LockConfig>)> = vec![
        ("ttl", opts(|o| o.ttl = Some(0.0))),
        ("ttl", opts(|o| o.ttl = Some(-5.0))),
        ("ttl", opts(|o| o.ttl = Some(1.5))),
        ("ttl", opts(|o| o.ttl = Some(f64::NAN))),
        ("ttl", opts(|o| o.ttl = Some(f64::INFINITY))),
        ("ttl", opts(|o| o.ttl = Some(1e300))),
        ("retryDelay", opts(|o| o.retry_delay = Some(-1.0))),
        ("retryDelay", opts(|o| o.retry_delay = Some(0.5))),
        ("maxRetries", opts(|o| o.max_retries = Some(-2.0))),
        ("maxRetries", opts(|o| o.max_retries = Some(2.5))),
        ("maxRetries", opts(|o| o.max_retries = Some(f64::NAN))),
        (
            "keyPrefix",
            opts(|o| o.key_prefix = Some("x".repeat(MAX_KEY_BYTES))),
        ),
    ];
    for (name, result) in cases {
        let err = result.expect_err(name);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains(name), "{name}: {}", err.message());
    }
}

#[test]
fn per_call_options_override_the_managers() {
    let base = opts(|o| {
        o.ttl = Some(5_000.0);
        o.key_prefix = Some("p:".into());
    })
    .expect("valid");
    let call = base
        .with(&LockOptions {
            retry_delay: Some(7.0),
            ..LockOptions::default()
        })
        .expect("valid");
    assert_eq!(call.ttl_ms, 5_000);
    assert_eq!(call.retry_delay_ms, 7);
    assert_eq!(call.key_prefix, "p:");
    let err = base
        .with(&LockOptions {
            wait_replicas: Some((0.0, 100.0)),
            ..LockOptions::default()
        })
        .expect_err("count 0");
    assert!(err.message().contains("waitReplicas.count"));
}

#[test]
fn validity_is_the_ttl_less_the_drift() {
    assert_eq!(validity_ms(10_000), 10_000 - 100 - 2);
    assert_eq!(validity_ms(300), 300 - 3 - 2);
    assert_eq!(validity_ms(1), 0);
}

#[test]
fn retries_count_attempts_after_the_first() {
    assert!(Retries::Limited(0).allows_another(0));
    assert!(!Retries::Limited(0).allows_another(1));
    assert!(Retries::Limited(2).allows_another(2));
    assert!(!Retries::Limited(2).allows_another(3));
    assert!(Retries::Unlimited.allows_another(u64::MAX));
}

#[test]
fn keys_are_prefix_plus_name() {
    let c = LockConfig::default();
    assert_eq!(c.key_for("a b\nc ✓").expect("valid"), "lock:a b\nc ✓");
    assert_eq!(
        c.key_for("").expect_err("empty").kind(),
        ErrorKind::InvalidArgument
    );
    let long = "x".repeat(MAX_KEY_BYTES);
    assert!(c
        .key_for(&long)
        .expect_err("too long")
        .message()
        .contains("resourceName"));
    assert!(c.key_for(&long[5..]).is_ok());
}

#[test]
fn extend_keeps_millisecond_fractions() {
    assert_eq!(extend_ttl_ms(10.0), Ok(10_000));
    assert_eq!(extend_ttl_ms(0.25), Ok(250));
    assert_eq!(extend_ttl_ms(0.001), Ok(1));
    for bad in [0.0, -1.0, 0.0004, f64::NAN, f64::INFINITY, 1e300] {
        let err = extend_ttl_ms(bad).expect_err("invalid");
        assert!(err.message().contains("seconds"));
    }
}

#[test]
fn connection_timeouts_default_and_validate() {
    let c = ConnectionConfig::new("redis://x".into(), None, None).expect("valid");
    assert_eq!(c.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    assert_eq!(c.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
    let err = ConnectionConfig::new("redis://x".into(), Some(0.0), None).expect_err("0");
    assert!(err.message().contains("connectTimeout"));
}

#[test]
fn tls_needs_rediss_and_a_cert_with_its_key() {
    let plain = ConnectionConfig::new("redis://x".into(), None, None).expect("valid");
    let err = plain.with_tls(TlsConfig::default()).expect_err("redis://");
    assert!(err.message().contains("rediss://"));
    let secure = ConnectionConfig::new("rediss://x".into(), None, None).expect("valid");
    let cert_only = TlsConfig {
        cert: Some(b"pem".to_vec()),
        ..TlsConfig::default()
    };
    let err = secure.clone().with_tls(cert_only).expect_err("no key");
    assert!(err.message().contains("tls.key"));
    let c = secure.with_tls(TlsConfig::default()).expect("valid");
    assert!(c.tls.is_some());
    // Key material never shows in debug output.
    let shown = format!(
        "{:?}",
        TlsConfig {
            key: Some(b"SECRET".to_vec()),
            ..TlsConfig::default()
        }
    );
    assert!(!shown.contains("SECRET"));
}

#[test]
fn the_address_hides_credentials() {
    let c = |url: &str| ConnectionConfig::new(url.into(), None, None).expect("valid");
    assert_eq!(c("redis://u:secret@h:7000/2").address(), "h:7000");
    assert_eq!(c("rediss://:p@[::1]:6380").address(), "[::1]:6380");
    assert_eq!(
        c("redis+unix:///run/r.sock?pass=x").address(),
        "/run/r.sock"
    );
}
