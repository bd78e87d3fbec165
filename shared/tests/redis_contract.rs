//! The backend contract, against a real `redis-server` started per test.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use snakepit_shared::RedisBackend;
use snakepit_shared::contract::*;
use snakepit_shared::test_redis::TestRedis;

async fn backend(redis: &TestRedis) -> RedisBackend {
    RedisBackend::connect(&redis.url(), "test").await.expect("connect")
}

#[tokio::test]
async fn pubsub() {
    let r = TestRedis::start();
    pubsub_delivers_in_order_per_room(backend(&r).await).await;
}

#[tokio::test]
async fn unsubscribe() {
    let r = TestRedis::start();
    dropped_subscriptions_receive_nothing(backend(&r).await).await;
}

#[tokio::test]
async fn notices() {
    let r = TestRedis::start();
    notices_reach_subscribers(backend(&r).await).await;
}

#[tokio::test]
async fn directory() {
    let r = TestRedis::start();
    directory_matchmakes_without_overbooking(backend(&r).await).await;
}

#[tokio::test]
async fn concurrent_seats() {
    let r = TestRedis::start();
    concurrent_seats_never_overbook(backend(&r).await).await;
}

#[tokio::test]
async fn sessions() {
    let r = TestRedis::start();
    sessions_expire(backend(&r).await).await;
}

#[tokio::test]
async fn top_scores() {
    let r = TestRedis::start();
    top_scores_keep_the_best_per_name(backend(&r).await).await;
}

#[tokio::test]
async fn ownership() {
    let r = TestRedis::start();
    leases_fence_snapshots_and_expire(backend(&r).await).await;
}

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
