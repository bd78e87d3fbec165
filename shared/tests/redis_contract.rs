//! The backend contract, against a real `redis-server` started per test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use snakepit_shared::RedisBackend;
use snakepit_shared::contract::*;
use snakepit_shared::test_redis::TestRedis;

async fn backend(redis: &TestRedis) -> RedisBackend {
    RedisBackend::connect(&redis.url(), "test").await.expect("connect")
}

snakepit_shared::backend_contract_tests!({
    let redis = TestRedis::start();
    let b = backend(&redis).await;
    (redis, b)
});

#[tokio::test]
async fn two_prefixes_share_one_redis() {
    let r = TestRedis::start();
    let a = RedisBackend::connect(&r.url(), "a").await.unwrap();
    let b = RedisBackend::connect(&r.url(), "b").await.unwrap();
    prefixes_isolate_clusters(a, b).await;
}

#[tokio::test]
async fn subscriptions_come_back_after_redis_restarts() {
    let mut r = TestRedis::start();
    let b = backend(&r).await;
    survives_a_restart(b, || r.restart()).await;
}
