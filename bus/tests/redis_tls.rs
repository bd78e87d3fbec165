//! Redis over TLS with a user and password (`rediss://user:pass@host`), as a
//! managed Redis asks: the whole backend contract against a `redis-server`
//! that speaks only TLS, on a certificate of a certificate authority the
//! test makes, and the ways a wrong setting fails.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use snakepit_bus::contract::*;
use snakepit_bus::test_redis::{TLS_PASSWORD, TLS_USER, TestRedis};
use snakepit_bus::{RedisBackend, Topology};

async fn backend(redis: &TestRedis) -> RedisBackend {
    RedisBackend::connect_with_ca(&redis.url(), "test", Some(&redis.ca_pem())).await.expect("connect over TLS")
}

snakepit_bus::backend_contract_tests!({
    let redis = TestRedis::start_tls();
    let b = backend(&redis).await;
    (redis, b)
});

#[tokio::test]
async fn subscriptions_come_back_after_a_tls_redis_restarts() {
    let mut r = TestRedis::start_tls();
    let b = backend(&r).await;
    survives_a_restart(b, || r.restart()).await;
}

/// A certificate that no trusted authority signed is refused: the system's
/// authorities do not know the test's.
#[tokio::test]
async fn an_unknown_certificate_authority_is_refused() {
    let r = TestRedis::start_tls();
    let err = RedisBackend::connect(&r.url(), "test").await.err().expect("connected to an untrusted server");
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let r = TestRedis::start_tls();
    let url = format!("rediss://{TLS_USER}:not-{TLS_PASSWORD}@127.0.0.1:{}/", r.port);
    let err =
        RedisBackend::connect_with_ca(&url, "test", Some(&r.ca_pem())).await.err().expect("wrong password let in");
    let text = err.to_string();
    assert!(text.contains("WRONGPASS") || text.to_lowercase().contains("auth"), "{text}");
    // The password never shows in what is logged.
    assert!(!text.contains(TLS_PASSWORD), "{text}");
}

#[tokio::test]
async fn plain_redis_cannot_talk_to_a_tls_port() {
    let r = TestRedis::start_tls();
    let url = format!("redis://{TLS_USER}:{TLS_PASSWORD}@127.0.0.1:{}/", r.port);
    let connect = RedisBackend::connect(&url, "test");
    let result = tokio::time::timeout(std::time::Duration::from_secs(10), connect).await;
    assert!(!matches!(result, Ok(Ok(_))), "plain text reached a TLS-only server");
}

#[tokio::test]
async fn a_ca_file_needs_a_tls_url() {
    let r = TestRedis::start_tls();
    let url = format!("redis://127.0.0.1:{}/", r.port);
    let err = RedisBackend::connect_with_ca(&url, "test", Some(&r.ca_pem())).await.err().expect("accepted");
    assert!(err.to_string().contains("rediss://"), "{err}");
}

/// What no retry can fix fails at start, without the password in the
/// message: a URL that does not parse, a CA file with no certificate.
#[test]
fn settings_no_retry_can_fix_are_refused_at_once() {
    let bad_url =
        RedisBackend::check_settings("redis://:pw-secret@127.0.0.1:notaport/", Topology::Single, None).unwrap_err();
    assert!(!bad_url.to_string().contains("pw-secret"), "{bad_url}");
    let garbage =
        RedisBackend::check_settings("rediss://u:p@127.0.0.1:6380/", Topology::Single, Some(b"garbage")).unwrap_err();
    assert!(garbage.to_string().contains("no PEM certificate"), "{garbage}");
    let r = TestRedis::start_tls();
    RedisBackend::check_settings(&r.url(), Topology::Single, Some(&r.ca_pem())).expect("good settings");
    RedisBackend::check_settings("redis://127.0.0.1:6379/", Topology::Single, None).expect("plain settings");
}
