//! The Redis backend's own metrics against a real `redis-server`: a Redis
//! that goes away and comes back is seen down, then up, and counted as
//! exactly one reconnect per connection and one resubscribe, and the
//! subscriptions really work again.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use prometheus::Registry;
use snakepit_bus::redis_metrics::RedisMetrics;
use snakepit_bus::test_redis::TestRedis;
use snakepit_bus::{Bus, Notice, RedisBackend, Topology};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_seen_down_then_counted_once_per_connection() {
    let mut redis = TestRedis::start();
    let registry = Registry::new();
    let m = RedisMetrics::register(&registry).unwrap();
    let stop = CancellationToken::new();
    let b = RedisBackend::connect_with_metrics(&redis.url(), Topology::Single, "t", None, &m, &stop).await.unwrap();
    let mut notices = b.subscribe_notices().await.unwrap();
    wait_for("up at first", Duration::from_secs(3), || m.up.get() == 1).await;
    assert_eq!((m.reconnects.get(), m.resubscribes.get()), (0, 0));

    redis.kill();
    wait_for("down once Redis is gone", Duration::from_secs(3), || m.up.get() == 0).await;
    // Pings fail meanwhile; a failed attempt to reconnect is no reconnect.
    sleep(Duration::from_millis(2500)).await;
    assert_eq!((m.up.get(), m.reconnects.get(), m.resubscribes.get()), (0, 0, 0));

    redis.restart();
    wait_for("up and counted after the restart", Duration::from_secs(15), || {
        m.up.get() == 1 && m.reconnects.get() == 2 && m.resubscribes.get() == 1
    })
    .await;
    // The count is the subscriptions' truth: a notice goes through again.
    b.publish_notice(Notice::RoomsReleased).await.unwrap();
    let got = timeout(Duration::from_secs(3), notices.recv()).await.expect("notice after the restart");
    assert!(matches!(got, Some(Notice::RoomsReleased)));
    // Nothing more is counted while Redis stays up.
    sleep(Duration::from_millis(2500)).await;
    assert_eq!((m.up.get(), m.reconnects.get(), m.resubscribes.get()), (1, 2, 1));

    // The up ping ends with the stop token: nothing tracks Redis after it.
    stop.cancel();
    sleep(Duration::from_millis(100)).await;
    redis.kill();
    sleep(Duration::from_millis(2500)).await;
    assert_eq!(m.up.get(), 1, "no ping after the stop");
}

/// With no channels subscribed there is nothing to restore: a reconnect,
/// but no resubscribe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_subscriptions_no_resubscribe() {
    let mut redis = TestRedis::start();
    let m = RedisMetrics::register(&Registry::new()).unwrap();
    let stop = CancellationToken::new();
    let _b = RedisBackend::connect_with_metrics(&redis.url(), Topology::Single, "t", None, &m, &stop).await.unwrap();
    wait_for("up at first", Duration::from_secs(3), || m.up.get() == 1).await;
    redis.restart();
    wait_for("both connections back", Duration::from_secs(15), || m.reconnects.get() == 2 && m.up.get() == 1).await;
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(m.resubscribes.get(), 0);
}
